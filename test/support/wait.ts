// Bounded polling: the only way tests wait for something (no fixed sleeps).

export interface WaitOptions {
    /** what we wait for, for the error message */
    readonly what: string;
    /** give up after this many ms (default 15000) */
    readonly timeoutMs?: number;
    /** pause between tries in ms (default 50) */
    readonly intervalMs?: number;
}

export class WaitTimeout extends Error {
    constructor(what: string, ms: number, last?: unknown) {
        super(`timed out after ${ms} ms waiting for ${what}${last ? ` (last: ${last instanceof Error ? last.message : String(last)})` : ""}`);
        this.name = "WaitTimeout";
    }
}

const pause = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Call `probe` until it returns a value other than undefined/false, or the
 * deadline passes. A probe that throws counts as "not yet" (its last error is
 * reported on timeout), unless it throws a FatalWait which ends the wait.
 */
export async function waitFor<T>(probe: () => Promise<T | undefined | false> | T | undefined | false, opts: WaitOptions): Promise<T> {
    const timeoutMs = opts.timeoutMs ?? 15000;
    const intervalMs = opts.intervalMs ?? 50;
    const deadline = Date.now() + timeoutMs;
    let last: unknown;
    for (;;) {
        try {
            const v = await probe();
            if (v !== undefined && v !== false) return v as T;
        } catch (e) {
            if (e instanceof FatalWait) throw e;
            last = e;
        }
        if (Date.now() >= deadline) throw new WaitTimeout(opts.what, timeoutMs, last);
        await pause(Math.min(intervalMs, Math.max(1, deadline - Date.now())));
    }
}

/** Thrown by a probe to stop waiting at once (e.g. the daemon died). */
export class FatalWait extends Error {
    constructor(message: string) {
        super(message);
        this.name = "FatalWait";
    }
}
