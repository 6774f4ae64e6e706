#!/usr/bin/env bash
# The main job: bring the test environment up (libvirt in a sealed namespace, the test
# guest), build, put the demo manifests into state/, and run the controller on them in the
# foreground. Ctrl-C stops it (the VM keeps running; `npm run testenv:down` removes all).
set -euo pipefail
cd "$(dirname "$0")/.."
npm run testenv:up
npm run build
for file in examples/test-guest/*.yaml; do
  [ -e "state/$(basename "$file")" ] || cp "$file" state/
done
echo "== controller (try in another terminal: npm run testenv:exec -- node dist/cli/main.js get all -o wide)"
# The test guest's kernel is in /run, which kvmctl's host-path defaults leave out.
exec ip netns exec kvmctl-test node dist/cli/main.js --dir state controller \
  --default-domain-type qemu --console-log-dir /var/log/kvmctl/console \
  --allow-host-path kernel=/run/kvmctl-testenv/guest "$@"
