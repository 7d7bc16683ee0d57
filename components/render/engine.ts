// Strict template filling: templates are files under config-templates/<role>/
// that look like the real config. A missing or unknown variable, or an empty
// value, is an error naming the template and the variable. Pure apart from
// reading the template files (cached).
import * as fs from "fs";
import * as path from "path";
import Handlebars from "handlebars";

export const TEMPLATE_ROOT = path.resolve(__dirname, "..", "..", "config-templates");

export class RenderError extends Error {
    constructor(
        readonly template: string,
        message: string,
    ) {
        super(`render error in ${template}: ${message}`);
        this.name = "RenderError";
    }
}

const hb = Handlebars.create();
// join an array: {{join peers " "}}
hb.registerHelper("join", (arr: unknown, sep: unknown) => {
    if (!Array.isArray(arr)) throw new Error("join expects an array");
    return arr.join(typeof sep === "string" ? sep : ",");
});
hb.registerHelper("eq", (a: unknown, b: unknown) => a === b);

const compiled = new Map<string, HandlebarsTemplateDelegate>();

function compile(template: string): HandlebarsTemplateDelegate {
    let fn = compiled.get(template);
    if (!fn) {
        const file = path.join(TEMPLATE_ROOT, template);
        const source = fs.readFileSync(file, "utf8");
        fn = hb.compile(source, { strict: true, noEscape: true, knownHelpersOnly: false });
        compiled.set(template, fn);
    }
    return fn;
}

/** Refuse empty strings, null, undefined and NaN anywhere in the context. */
function checkValues(template: string, value: unknown, where: string): void {
    if (value === undefined || value === null) throw new RenderError(template, `variable "${where}" is ${value}`);
    if (typeof value === "string" && value.trim() === "") throw new RenderError(template, `variable "${where}" is empty`);
    if (typeof value === "number" && !Number.isFinite(value)) throw new RenderError(template, `variable "${where}" is not a finite number`);
    if (Array.isArray(value)) value.forEach((v, i) => checkValues(template, v, `${where}[${i}]`));
    else if (typeof value === "object") for (const [k, v] of Object.entries(value as object)) checkValues(template, v, where ? `${where}.${k}` : k);
}

export interface HeaderInfo {
    readonly stack: string;
    readonly role: string;
    readonly host: string;
}

/**
 * Fill `template` (path under config-templates/) with `vars`. `comment` is the
 * config's comment leader; the first line names stack, role and host (after a
 * shebang when the template starts with one).
 */
export function renderTemplate(template: string, vars: Record<string, unknown>, header: HeaderInfo, comment = "#"): string {
    checkValues(template, vars, "");
    let body: string;
    try {
        body = compile(template)(vars);
    } catch (e) {
        const msg = (e as Error).message.replace(/ in \[object Object\]/g, "");
        throw new RenderError(template, msg);
    }
    const line = `${comment} Rendered by the IF.bus gateway stack for stack=${header.stack} role=${header.role} host=${header.host} from ${template}; do not edit by hand.`;
    if (body.startsWith("#!")) {
        const nl = body.indexOf("\n");
        return `${body.slice(0, nl + 1)}${line}\n${body.slice(nl + 1)}`;
    }
    return `${line}\n${body}`;
}
