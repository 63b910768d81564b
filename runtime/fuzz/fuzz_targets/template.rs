//! The Go templates of `--format` / `inspect -f`: the template text (up to
//! the first NUL byte) is parsed as `--format` values are (bare, `table`,
//! `json`), and
//! rendered against the JSON after the NUL (a sample `ps`/`inspect`
//! document when there is none or it is not JSON: field values come from
//! images and containers, which are hostile). No panic.
#![no_main]

// The modules are private to hull-runtime's CLI; compile the very same
// files here rather than widening Hull's API for the fuzzer.
#[path = "../../src/cli/output.rs"]
#[allow(dead_code)]
mod output;
#[path = "../../src/cli/tabwriter.rs"]
#[allow(dead_code)]
mod tabwriter;
#[path = "../../src/cli/template.rs"]
mod template;
#[path = "../../src/cli/template_funcs.rs"]
mod template_funcs;

use libfuzzer_sys::fuzz_target;
use output::{Columns, Format};
use serde_json::{json, Value};
use template::Template;

const COLUMNS: Columns = Columns {
    names: &[("ID", "CONTAINER ID"), ("Names", "NAMES"), ("Status", "STATUS")],
    default: "table {{.ID}}\\t{{.Names}}\\t{{.Status}}",
};

fn sample() -> Value {
    json!({
        "ID": "0123456789ab", "Image": "busybox:latest", "Command": "\"sh -c 'sleep 1'\"",
        "Names": "web", "Status": "Up 2 seconds", "Ports": "0.0.0.0:8080->80/tcp",
        "Labels": { "a": "1", "b": "" }, "Mounts": [{ "Source": "/srv", "Destination": "/data", "RW": true }],
        "State": { "Pid": 42, "Status": "running", "Running": true, "ExitCode": 0 },
        "Config": { "Env": ["A=1", "B=2"], "Cmd": ["sh"], "Entrypoint": null, "ExposedPorts": { "80/tcp": {} } },
        "NetworkSettings": { "Networks": { "bridge": { "IPAddress": "10.88.0.2" } } },
        "Name": "/web", "Size": 1.5e3, "Nested": [[1, [2, [3]]], { "x": { "y": "z" } }],
    })
}

fuzz_target!(|data: &[u8]| {
    let (text, rest) = match data.iter().position(|&b| b == 0) {
        Some(nul) => (&data[..nul], Some(&data[nul + 1..])),
        None => (data, None),
    };
    let Ok(text) = std::str::from_utf8(text) else { return };
    let value = rest
        .and_then(|json| serde_json::from_slice::<Value>(json).ok())
        .unwrap_or_else(sample);

    if let Ok(template) = Template::parse(text) {
        let _ = template.render(&value);
    }
    if let Ok(format) = Format::listing(Some(text), COLUMNS.default) {
        let _ = format.render(&COLUMNS, &[value.clone(), value]);
    }
});
