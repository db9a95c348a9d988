"""OTA registry benchmark: push and verified pull of a release, and many gateways pulling at once.

Runs against the reference registry server (docker-registry) on loopback with htpasswd auth,
using the quantized model of a finished run (``make bench`` runs it after the pipeline). Each
gateway runs what ``tinyml-tfx pull`` runs (``gateway.pull``): the channel resolved once, the
signature, the device-class, anti-rollback and signed-history checks, streamed resumable
downloads, the files installed and the gateway's state file written.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import statistics
import time

from components.ota import channels, gateway, http_registry, publish, releases, signing

USER, PASSWORD = "bench", "bench-pass"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quantized", required=True, help="TFLiteQuantizer output folder of a run")
    parser.add_argument("--device-report", required=True, help="McuSizeGate report folder of the same run")
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--gateways", type=int, default=200)
    args = parser.parse_args(argv)

    files = publish.release_files(args.quantized, args.device_report)
    gate = json.loads(files["device_report.json"])
    targets = ",".join(t["board"] for t in gate["targets"] if t["fits"])
    private, public = signing.generate_key_pair()
    results = {"release_bytes": sum(len(c) for c in files.values()), "model_bytes": len(files["model.tflite"])}
    from tests.support import reference_registry  # the benchmark runs from the checkout, like the tests

    with reference_registry.serve(os.path.join(args.workdir, "registry"), USER, PASSWORD) as url:
        store = http_registry.HttpRegistry(url, "kws", USER, PASSWORD)
        start = time.perf_counter()
        release = publish.publish(store, files, {releases.TARGETS_ANNOTATION: targets}, "kws", private, False,
                                  "canary", actor="bench")
        results["push_seconds"] = round(time.perf_counter() - start, 3)
        device = gateway.Device(targets.split(",")[0], "stable")
        channels.promote(store, device.device_class, actor="bench", private_key=private)

        def pull(number):
            registry = http_registry.HttpRegistry(url, "kws", USER, PASSWORD)
            output = os.path.join(args.workdir, "gateways", str(number))
            began = time.perf_counter()
            gateway.pull(registry, "kws", device, output, public)
            seconds = time.perf_counter() - began
            with open(os.path.join(output, releases.MODEL_FILE), "rb") as f:
                assert f.read() == files[releases.MODEL_FILE]
            return seconds

        results["single_pull_seconds"] = round(pull(0), 3)
        workers = min(args.gateways, 64)
        start = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            durations = list(pool.map(pull, range(1, args.gateways + 1)))
        wall = time.perf_counter() - start
        results.update({
            "gateways": args.gateways, "concurrent_connections": workers, "verified_pulls": len(durations),
            "all_pulls_wall_seconds": round(wall, 2), "pulls_per_second": round(len(durations) / wall, 1),
            "pull_seconds_median": round(statistics.median(durations), 3),
            "pull_seconds_p95": round(sorted(durations)[int(0.95 * len(durations)) - 1], 3),
            "version": release.version})
    print(f"OTA registry (docker-registry on loopback, htpasswd auth): release {results['release_bytes']} B "
          f"(model {results['model_bytes']} B); push {results['push_seconds']} s; one verified pull "
          f"{results['single_pull_seconds']} s; {results['verified_pulls']} gateways ({workers} at a time) pulled and "
          f"verified in {results['all_pulls_wall_seconds']} s ({results['pulls_per_second']}/s; per pull median "
          f"{results['pull_seconds_median']} s, p95 {results['pull_seconds_p95']} s)")
    with open(os.path.join(args.workdir, "bench_registry.json"), "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
