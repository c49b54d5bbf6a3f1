from cnm.sandbox_files import HOSTS_HEADER, render_hosts, render_resolv_conf

HOST_CONF = """# generated
nameserver 127.0.0.53
nameserver 10.0.0.53
nameserver ::1
search corp.example
options edns0 trust-ad
"""


def test_hosts_lists_header_extra_hosts_then_own_addresses() -> None:
    text = render_hosts("web", "", ["10.0.0.2", "fd00::2"], ["db:10.0.0.9"])
    assert text.startswith(HOSTS_HEADER)
    tail = text[len(HOSTS_HEADER) :].splitlines()
    assert tail == ["10.0.0.9\tdb", "10.0.0.2\tweb", "fd00::2\tweb"]


def test_hosts_with_domainname_names_fqdn_first() -> None:
    text = render_hosts("web", "example.org", ["10.0.0.2"], [])
    assert text.splitlines()[-1] == "10.0.0.2\tweb.example.org web"


def test_resolv_conf_drops_loopback_nameservers_keeps_search_and_options() -> None:
    text = render_resolv_conf(HOST_CONF, [], [], [])
    assert text == "nameserver 10.0.0.53\nsearch corp.example\noptions edns0 trust-ad\n"


def test_resolv_conf_overrides_from_sandbox_options() -> None:
    text = render_resolv_conf(HOST_CONF, ["192.0.2.53"], ["a.test", "b.test"], ["ndots:2"])
    assert text == "nameserver 192.0.2.53\nsearch a.test b.test\noptions ndots:2\n"


def test_resolv_conf_with_only_loopback_servers_has_no_nameserver() -> None:
    assert "nameserver" not in render_resolv_conf("nameserver 127.0.0.1\n", [], [], [])


def test_dns_search_dot_clears_search() -> None:
    assert "search" not in render_resolv_conf(HOST_CONF, [], ["."], [])
