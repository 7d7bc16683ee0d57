// Stand-ins for the commands the keepalived scripts call (aws, curl against
// the EC2 metadata service, opensips-cli): no cloud exists here, and nothing
// may reach 169.254.169.254. Each records its arguments, one call per line
// (arguments separated by tabs), and answers like the real one would.
import * as fs from "fs";
import * as path from "path";

export const FAKE_TOKEN = "AQAEAFAKE-token";
export const FAKE_MAC = "0e:11:22:33:44:55";
export const FAKE_ENI = "eni-0fake00000000001";

export interface Fakes {
    readonly dir: string;
    /** environment that points the scripts at the fakes (IFBUS_*), with no pause between retries */
    readonly env: NodeJS.ProcessEnv;
    /** recorded calls of one fake, as argument lists */
    calls(name: "aws" | "curl" | "opensips-cli"): string[][];
    /** make the next `n` aws calls fail */
    failAws(n: number): void;
    /** make every IMDS request fail */
    failImds(): void;
    /** make `opensips-cli -x mi uptime` fail (OpenSIPS hung) or answer again */
    setOpensipsHealthy(healthy: boolean): void;
}

const RECORD = `printf '%s' "$(basename "$0")" >> "$FAKE_DIR/calls.$(basename "$0")"; for a in "$@"; do printf '\\t%s' "$a" >> "$FAKE_DIR/calls.$(basename "$0")"; done; echo >> "$FAKE_DIR/calls.$(basename "$0")"`;

const SCRIPTS: Record<string, string> = {
    aws: `#!/bin/sh
${RECORD}
left=$(cat "$FAKE_DIR/aws-failures" 2>/dev/null || echo 0)
if [ "$left" -gt 0 ]; then echo $((left - 1)) > "$FAKE_DIR/aws-failures"; echo "An error occurred (RequestLimitExceeded)" >&2; exit 255; fi
echo "eipassoc-0fake"
`,
    curl: `#!/bin/sh
${RECORD}
[ -e "$FAKE_DIR/imds-fail" ] && { echo "curl: (7) Failed to connect" >&2; exit 7; }
url="" put=0 ttl=0 token=""
while [ $# -gt 0 ]; do
    case "$1" in
        -X) shift; [ "$1" = PUT ] && put=1 ;;
        -H) shift; case "$1" in
                "X-aws-ec2-metadata-token-ttl-seconds: "*) ttl=1 ;;
                "X-aws-ec2-metadata-token: "*) token=\${1#X-aws-ec2-metadata-token: } ;;
            esac ;;
        http*) url=$1 ;;
    esac
    shift
done
case "$url" in
    http://169.254.169.254/latest/api/token) [ $put = 1 ] && [ $ttl = 1 ] && { printf '%s' "${FAKE_TOKEN}"; exit 0; } ;;
    http://169.254.169.254/latest/meta-data/mac) [ "$token" = "${FAKE_TOKEN}" ] && { printf '%s' "${FAKE_MAC}"; exit 0; } ;;
    http://169.254.169.254/latest/meta-data/network/interfaces/macs/${FAKE_MAC}/interface-id) [ "$token" = "${FAKE_TOKEN}" ] && { printf '%s' "${FAKE_ENI}"; exit 0; } ;;
esac
echo "curl: (22) The requested URL returned error: 401" >&2
exit 22
`,
    "opensips-cli": `#!/bin/sh
${RECORD}
case "$*" in *uptime*) [ -e "$FAKE_DIR/unhealthy" ] && exit 1 ;; esac
echo '"OK"'
`,
};

export function makeFakes(dir: string): Fakes {
    fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
    for (const [name, body] of Object.entries(SCRIPTS)) fs.writeFileSync(path.join(dir, name), body, { mode: 0o755 });
    const env: NodeJS.ProcessEnv = {
        ...process.env,
        FAKE_DIR: dir,
        IFBUS_AWS: path.join(dir, "aws"),
        IFBUS_CURL: path.join(dir, "curl"),
        IFBUS_OPENSIPS_CLI: path.join(dir, "opensips-cli"),
        IFBUS_RETRY_DELAY: "0",
    };
    return {
        dir,
        env,
        calls(name) {
            const f = path.join(dir, `calls.${name}`);
            if (!fs.existsSync(f)) return [];
            return fs
                .readFileSync(f, "utf8")
                .split("\n")
                .filter((l) => l !== "")
                .map((l) => l.split("\t").slice(1));
        },
        failAws(n) {
            fs.writeFileSync(path.join(dir, "aws-failures"), String(n));
        },
        failImds() {
            fs.writeFileSync(path.join(dir, "imds-fail"), "");
        },
        setOpensipsHealthy(healthy) {
            const f = path.join(dir, "unhealthy");
            if (healthy) fs.rmSync(f, { force: true });
            else fs.writeFileSync(f, "");
        },
    };
}
