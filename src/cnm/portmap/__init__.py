"""Published ports: what a user may ask for (``spec``), host ports taken and held for containers
(``mapper``), and the userland relay for what the kernel cannot translate (``proxy``)."""
