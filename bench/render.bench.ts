// npm run bench: how long rendering a whole stack takes (every host, every
// role, OpenSIPS included), median over N runs after one cold run that also
// compiles the templates. Target: under 100 ms for the prod stack.
// BENCH_RUNS=<n> (default 50), BENCH_STACK=<name> (default prod); --check exits 1 above target.
import { performance } from "perf_hooks";
import { loadSpec, makeTestTls, offlineModel, randomSecrets } from "../components/offline";
import { renderAll } from "../components/render";

const TARGET_MS = 100;

function quantile(sorted: number[], q: number): number {
    return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

function main(): void {
    const stack = process.env.BENCH_STACK ?? "prod";
    const runs = Math.max(1, Number(process.env.BENCH_RUNS ?? 50));
    const spec = loadSpec(stack);
    // certificate generation (openssl) is not part of rendering
    const model = offlineModel(spec, { secrets: randomSecrets(spec, makeTestTls(spec.sipDomain)) });

    let t = performance.now();
    const first = renderAll(model);
    const coldMs = performance.now() - t;
    const files = first.reduce((n, h) => n + h.files.length, 0);
    const bytes = first.reduce((n, h) => n + h.files.reduce((m, f) => m + f.content.length, 0), 0);

    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
        t = performance.now();
        renderAll(model);
        times.push(performance.now() - t);
    }
    times.sort((a, b) => a - b);
    const median = quantile(times, 0.5);
    console.log(`render ${stack}: ${first.length} hosts, ${files} files, ${(bytes / 1024).toFixed(0)} KiB`);
    console.log(`  cold (first run, compiles templates): ${coldMs.toFixed(1)} ms`);
    console.log(`  warm over ${runs} runs: median ${median.toFixed(2)} ms, p90 ${quantile(times, 0.9).toFixed(2)} ms, max ${times[times.length - 1].toFixed(2)} ms`);
    console.log(`  target < ${TARGET_MS} ms (median): ${median < TARGET_MS ? "met" : "MISSED"}`);
    if (process.argv.includes("--check") && median >= TARGET_MS) process.exit(1);
}

main();
