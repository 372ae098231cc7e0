"""Vagrant on this machine kind, for the project's Vagrant test (not needed by testers).

box.py     a `debian/trixie64` (or bookworm64) libvirt box built locally from the lab image's debootstrap
           recipe, plus the flat apt repository of the .debs the deploy installs; cached by recipe
netns.py   a network namespace holding libvirtd, virtlogd, the repository server and the sink,
           with /dev/kvm hidden from libvirtd; everything started there is stopped by PID
"""
