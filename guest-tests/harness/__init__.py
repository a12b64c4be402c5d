"""The guest-test harness behind runner.py, one concern a module:

- env: paths of the guest assets, the guest's result line, timeouts, log;
- qemu: the QEMU versions found, the accelerator, one guest boot;
- daemon: the daemon under test and its lifecycle;
- share: the shared directory on the host (prepared files, the data pattern, snapshots,
  the host actor);
- checks: what the host checks after a workload ran;
- matrix: the cases and running them;
- bench: benchmarks (--compare, --dax-bench, --dax-hazard);
- demo: --demo, --shell, --dax-demo.
"""
