// Names and paths of the test environment, shared by the scripts, the tests and the
// benchmarks. Everything the environment creates is named here so `down` can remove it.

export const NETNS = "kvmctl-test";
export const LIBVIRT_URI = "qemu:///system";
/** Every libvirt object a test creates starts with this; the sweeper removes only these. */
export const TEST_PREFIX = "kvt-";
export const TEST_VG = "kvmctl-test-vg";

/** Per-boot state: pid files of the daemons we started, the run's SSH key. */
export const RUN_DIR = "/run/kvmctl-testenv";
/** Built artefacts that survive reboots (guest initramfs, keyed by a hash of its inputs). */
export const CACHE_DIR = "/var/cache/kvmctl-testenv";
/** The loop file behind the test volume group. */
export const STATE_DIR = "/var/lib/kvmctl-testenv";

// The sealed namespace's only link: a veth pair whose both ends stay inside it, with
// documentation-range (RFC 5737) addresses. passt needs a default route to start; with
// both ends inside, nothing routed there can leave the namespace.
export const VETH_GUEST_SIDE = { name: "kt-veth0", address: "198.51.100.2/24" };
export const VETH_GATEWAY_SIDE = { name: "kt-veth1", address: "198.51.100.1/24" };
export const DEFAULT_GATEWAY = "198.51.100.1";

// "Outside": a second sealed namespace linked only to the test namespace, standing for the
// world beyond the host. Connections from it arrive at the host from outside (port forwards'
// prerouting path), and guests' egress reaches it through the host's forwarding and NAT.
// Two addresses, so a test can deny one (203.0.113.128/25) and allow the other.
export const OUTSIDE_NETNS = "kvmctl-test-outside";
export const OUTSIDE_LINK = {
  inside: { name: "kt-out0", address: "203.0.113.1/24" },
  outside: { name: "kt-out1", addresses: ["203.0.113.2/24", "203.0.113.130/24"] },
};
