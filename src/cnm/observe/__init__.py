"""Seeing the network: the topology as records and pictures (``topology``, ``dot``), why one
sandbox can or cannot reach another (``explain``, ``nftrules``), and what the daemon has done
(``metrics``). Everything here reads the controller, the runtime and the firewall seam; nothing
here changes them.
"""
