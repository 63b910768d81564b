//! Go templates as Docker's CLI runs them for `--format` and `inspect -f`:
//! Go's `text/template` language (through the `gotmpl` crate: `if`/`else
//! if`/`with`/`range` with variables, pipelines, `{{- trim -}}` markers,
//! `index`, `printf`, `len`, `eq`/`ne`/`lt`/`le`/`gt`/`ge`, `and`/`or`/`not`)
//! with Docker's own functions added (see [`super::template_funcs`]), over
//! JSON data, with Docker's error words.
//!
//! Docker's rows also have a method with an argument, `{{.Label "KEY"}}`
//! (`ps`, `volume ls`, `network ls`). JSON data has no methods, so a row
//! carries its labels as a map under [`LABEL_FIELD`] and the template's
//! `X.Label ARG` is read as `(hull_label X.Label ARG)` before it is parsed.

use super::template_funcs::{self, DOCKER_FUNCTIONS, GO_BUILTINS};
use gotmpl::parse::{CommandNode, Expr, ListNode, Node, Parser, PipeNode};
use gotmpl::FuncMap;
use thiserror::Error;

/// A template that could not be parsed or applied.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TemplateError {
    /// Bad syntax, an unclosed block or an unknown function, told as Go
    /// tells it (`template: :1: unclosed action`).
    #[error("template parsing error: {0}")]
    Parse(String),
    /// The template failed on the data (a bad index, a wrong argument).
    #[error("template: {0}")]
    Execute(String),
}

/// A parsed template.
#[derive(Clone)]
pub struct Template {
    inner: gotmpl::Template,
}

impl std::fmt::Debug for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Template").finish_non_exhaustive()
    }
}

/// The row field that holds a row's labels as a map, for `{{.Label "KEY"}}`;
/// `--format json` leaves it out, as Docker's JSON has no methods.
pub const LABEL_FIELD: &str = "Label";

/// An action no template writes, put at the end of the text to see where
/// the parser closes its blocks.
const SENTINEL: &str = "hull_end_of_template";

/// A parse error of the engine in Go's words: `template: :LINE: MESSAGE`.
fn parse_error(err: gotmpl::TemplateError) -> TemplateError {
    TemplateError::Parse(match err {
        gotmpl::TemplateError::Parse { line, message, .. }
        | gotmpl::TemplateError::Lex { line, message, .. } => {
            format!("template: :{line}: {message}")
        }
        other => format!("template: {other}"),
    })
}

/// Whether a sequence of nodes ends with the sentinel action, and whether
/// the sentinel is anywhere in it.
fn sentinel_place(list: &ListNode) -> (bool, bool) {
    let is_sentinel = |node: &Node| match node {
        Node::Action(action) => pipe_names(&action.pipe).any(|(name, _)| name == SENTINEL),
        _ => false,
    };
    let last = list.nodes.last().is_some_and(is_sentinel);
    let mut found = false;
    walk(list, &mut |node| found |= is_sentinel(node));
    (last, found)
}

/// Calls `visit` on every node of `list`, blocks' bodies included.
fn walk(list: &ListNode, visit: &mut dyn FnMut(&Node)) {
    for node in &list.nodes {
        visit(node);
        match node {
            Node::List(inner) => walk(inner, visit),
            Node::If(branch) | Node::Range(branch) | Node::With(branch) => {
                walk(&branch.body, visit);
                if let Some(otherwise) = &branch.else_body {
                    walk(otherwise, visit);
                }
            }
            Node::Define(define) => walk(&define.body, visit),
            _ => {}
        }
    }
}

/// The function names a pipeline calls, with their lines.
fn pipe_names(pipe: &PipeNode) -> impl Iterator<Item = (String, usize)> + '_ {
    let mut names = Vec::new();
    collect_names(&pipe.commands, &mut names);
    names.into_iter()
}

fn collect_names(commands: &[CommandNode], names: &mut Vec<(String, usize)>) {
    fn expr(e: &Expr, names: &mut Vec<(String, usize)>) {
        match e {
            Expr::Identifier(pos, name) => names.push((name.to_string(), pos.line)),
            Expr::Pipe(_, pipe) => collect_names(&pipe.commands, names),
            Expr::Chain(_, inner, _) => expr(inner, names),
            _ => {}
        }
    }
    for command in commands {
        for arg in &command.args {
            expr(arg, names);
        }
    }
}

/// Every pipeline of a node (actions, block conditions, `template` calls).
fn node_pipe(node: &Node) -> Option<&PipeNode> {
    match node {
        Node::Action(action) => Some(&action.pipe),
        Node::If(branch) | Node::Range(branch) | Node::With(branch) => Some(&branch.pipe),
        Node::Template(call) => call.pipe.as_ref(),
        _ => None,
    }
}

/// What Go's parser refuses and the engine lets through: a block without
/// `{{end}}`, an `{{end}}` or `{{else}}` outside a block, a function no one
/// defined (Go finds it when parsing, so even a listing with no rows fails).
fn check(text: &str) -> Result<(), TemplateError> {
    // The text's own syntax errors first (an unclosed action would swallow
    // the sentinel).
    Parser::new(text, "{{", "}}")
        .and_then(Parser::parse)
        .map_err(parse_error)?;
    let marked = format!("{text}{{{{{SENTINEL}}}}}");
    let (list, defines) = Parser::new(&marked, "{{", "}}")
        .and_then(Parser::parse)
        .map_err(parse_error)?;
    let lines = text.lines().count().max(1);
    match sentinel_place(&list) {
        (true, _) => {}
        (false, true) => {
            return Err(TemplateError::Parse(format!(
                "template: :{lines}: unexpected EOF"
            )))
        }
        (false, false) => {
            return Err(TemplateError::Parse(
                "template: :1: unexpected {{end}} or {{else}} outside a block".into(),
            ))
        }
    }
    let mut unknown = None;
    let mut visit = |node: &Node| {
        for (name, line) in node_pipe(node).into_iter().flat_map(pipe_names) {
            let known = name == SENTINEL
                || name == template_funcs::LABEL_FUNCTION
                || GO_BUILTINS.contains(&name.as_str())
                || DOCKER_FUNCTIONS.contains(&name.as_str());
            if !known && unknown.is_none() {
                unknown = Some((name, line));
            }
        }
    };
    walk(&list, &mut visit);
    for define in &defines {
        walk(&define.body, &mut visit);
    }
    match unknown {
        Some((name, line)) => Err(TemplateError::Parse(format!(
            "template: :{line}: function \"{name}\" not defined"
        ))),
        None => Ok(()),
    }
}

/// The length of the Go literal or operand that starts `text` (a quoted or
/// raw string, a character, or a run of `$`, `.`, letters and digits), or 0.
fn operand_len(text: &str) -> usize {
    let bytes = text.as_bytes();
    match bytes.first() {
        Some(&quote @ (b'"' | b'\'' | b'`')) => {
            let mut i = 1;
            while i < bytes.len() {
                match bytes[i] {
                    b'\\' if quote != b'`' => i += 2,
                    c if c == quote => return i + 1,
                    _ => i += 1,
                }
            }
            0
        }
        _ => text
            .bytes()
            .take_while(|&c| c == b'$' || c == b'.' || c == b'_' || c.is_ascii_alphanumeric())
            .count(),
    }
}

/// `text` with each `X.Label ARG` inside an action written as
/// `(hull_label X.Label ARG)`; strings, comments and the text outside
/// actions are left as they are.
fn label_calls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open + 2]);
        rest = &rest[open + 2..];
        // Within one action: copy up to its `}}`, rewriting as we go.
        let mut action = String::new();
        loop {
            if rest.is_empty() || rest.starts_with("}}") {
                break;
            }
            if rest.starts_with("/*") {
                let end = rest.find("*/").map_or(rest.len(), |i| i + 2);
                action.push_str(&rest[..end]);
                rest = &rest[end..];
                continue;
            }
            let len = operand_len(rest);
            if len == 0 {
                let c = rest.chars().next().map_or(1, char::len_utf8);
                action.push_str(&rest[..c]);
                rest = &rest[c..];
                continue;
            }
            let (token, after) = rest.split_at(len);
            let is_call = !token.starts_with(['"', '\'', '`'])
                && token.ends_with(".Label")
                && after.starts_with([' ', '\t']);
            let argument = after.trim_start_matches([' ', '\t']);
            let argument_len = operand_len(argument);
            if is_call && argument_len > 0 {
                let skipped = after.len() - argument.len();
                action.push_str(&format!(
                    "(hull_label {token} {})",
                    &argument[..argument_len]
                ));
                rest = &after[skipped + argument_len..];
            } else {
                action.push_str(token);
                rest = after;
            }
        }
        out.push_str(&action);
    }
    out.push_str(rest);
    out
}

impl Template {
    /// Parses `text` with Docker's functions.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        Self::parse_with(text, template_funcs::docker_functions())
    }

    /// Parses `text` for a `table` header row: Docker's functions give back
    /// their first argument (the column's name).
    pub fn parse_header(text: &str) -> Result<Self, TemplateError> {
        Self::parse_with(text, template_funcs::header_functions())
    }

    fn parse_with(text: &str, funcs: FuncMap) -> Result<Self, TemplateError> {
        let text = &label_calls(text);
        check(text)?;
        let inner = gotmpl::Template::new("")
            .funcs(funcs)
            .parse(text)
            .map_err(parse_error)?;
        Ok(Self { inner })
    }

    /// Applies the template to `data`.
    pub fn render(&self, data: &serde_json::Value) -> Result<String, TemplateError> {
        let value =
            template_funcs::from_json(data).map_err(|e| TemplateError::Execute(e.to_string()))?;
        self.inner
            .execute_to_string(&value)
            .map_err(|e| TemplateError::Execute(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn data() -> Value {
        json!({
            "Name": "/web",
            "State": {"Running": true, "Pid": 42, "Status": "running", "ExitCode": 0},
            "Config": {
                "Cmd": ["sh", "-c", "sleep 9"],
                "Env": ["A=1", "B=2"],
                "Labels": {"zeta": "last", "alpha": "first"},
                "Volumes": null,
            },
            "Mounts": [],
        })
    }

    fn render(text: &str) -> String {
        Template::parse(text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .render(&data())
            .unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn fields_and_go_printing() {
        assert_eq!(render("{{.State.Pid}}"), "42");
        assert_eq!(
            render("{{ .Name }} is {{.State.Status}}"),
            "/web is running"
        );
        assert_eq!(render("{{.Config.Cmd}}"), "[sh -c sleep 9]");
        assert_eq!(render("{{.Config.Labels}}"), "map[alpha:first zeta:last]");
        assert_eq!(render("{{.Nope}}"), "<no value>");
        assert_eq!(render("{{.State.Running}}"), "true");
    }

    #[test]
    fn if_else_if_else() {
        assert_eq!(render("{{if .State.Running}}up{{else}}down{{end}}"), "up");
        assert_eq!(
            render("{{if not .State.Running}}a{{else if eq .State.Pid 42}}b{{else}}c{{end}}"),
            "b"
        );
        assert_eq!(render("{{if .Mounts}}m{{else}}none{{end}}"), "none");
    }

    #[test]
    fn with_and_range_with_variables() {
        assert_eq!(render("{{with .State}}{{.Status}}{{end}}"), "running");
        assert_eq!(render("{{with .Nope}}x{{else}}empty{{end}}"), "empty");
        assert_eq!(render("{{range .Config.Env}}{{.}};{{end}}"), "A=1;B=2;");
        // Map keys in sorted order, as Go ranges over them.
        assert_eq!(
            render("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}} {{end}}"),
            "alpha=first zeta=last "
        );
        assert_eq!(
            render("{{range $i, $c := .Config.Cmd}}{{$i}}:{{$c}},{{end}}"),
            "0:sh,1:-c,2:sleep 9,"
        );
        assert_eq!(
            render("{{range .Mounts}}x{{else}}no mounts{{end}}"),
            "no mounts"
        );
        assert_eq!(render("{{$n := .Name}}{{$n}}"), "/web");
    }

    #[test]
    fn index_printf_len() {
        assert_eq!(render("{{index .Config.Cmd 0}}"), "sh");
        assert_eq!(render(r#"{{index .Config.Labels "alpha"}}"#), "first");
        assert_eq!(render(r#"{{printf "%s-%d" .Name 3}}"#), "/web-3");
        assert_eq!(
            render(r#"{{printf "%05d|%-4s|" .State.Pid "ab"}}"#),
            "00042|ab  |"
        );
        assert_eq!(render("{{len .Config.Cmd}} {{len .Name}}"), "3 4");
    }

    #[test]
    fn comparisons_and_logic() {
        assert_eq!(
            render(
                r#"{{eq .State.Status "running"}} {{eq .State.Status "x" "running"}} {{ne .State.Pid 1}}"#
            ),
            "true true true"
        );
        assert_eq!(
            render("{{lt 1 2}} {{le 2 2}} {{gt .State.Pid 50}} {{ge .State.Pid 42}}"),
            "true true false true"
        );
        assert_eq!(
            render(r#"{{and .State.Running .Name}} {{or .Nope "dflt"}} {{not .State.Running}}"#),
            "/web dflt false"
        );
    }

    #[test]
    fn dockers_functions_and_pipelines() {
        assert_eq!(
            render("{{json .State}}"),
            r#"{"ExitCode":0,"Pid":42,"Running":true,"Status":"running"}"#
        );
        assert_eq!(render("{{json .Config.Volumes}}"), "null");
        assert_eq!(render("{{.State.Status | upper}}"), "RUNNING");
        assert_eq!(render("{{upper .State.Status | lower}}"), "running");
        assert_eq!(render("{{title .State.Status}}"), "Running");
        assert_eq!(render(r#"{{join .Config.Env ","}}"#), "A=1,B=2");
        assert_eq!(render(r#"{{index (split .Name "w") 1}}"#), "eb");
        assert_eq!(render(r#"{{.State.Pid | printf "%d!"}}"#), "42!");
    }

    #[test]
    fn trim_markers_and_comments() {
        assert_eq!(render("a  {{- .Name -}}  b"), "a/webb");
        assert_eq!(
            render("{{range .Config.Env -}}\n  {{.}}\n{{- end}}"),
            "A=1B=2"
        );
        assert_eq!(render("{{/* nothing */}}ok"), "ok");
    }

    #[test]
    fn label_is_a_method_with_an_argument() {
        let row = json!({"Names": "web", LABEL_FIELD: {"tier": "front", "a.b": "x y"}});
        let render = |text: &str| Template::parse(text).unwrap().render(&row).unwrap();
        assert_eq!(render(r#"{{.Label "tier"}}"#), "front");
        assert_eq!(
            render(r#"{{ .Label   `a.b` }}|{{.Label "nope"}}|"#),
            "x y||"
        );
        assert_eq!(
            render(r#"{{if eq (.Label "tier") "front"}}yes{{end}}"#),
            "yes"
        );
        assert_eq!(render(r#"{{$k := "tier"}}{{.Label $k | upper}}"#), "FRONT");
        assert_eq!(render(r#"{{with .}}{{.Label "tier"}}{{end}}"#), "front");
        // Strings, text outside actions and other fields are left alone.
        assert_eq!(
            render(r#".Label "tier" {{".Label \"tier\""}}"#),
            r#".Label "tier" .Label "tier""#
        );
        assert_eq!(
            label_calls("{{.Labels}} {{.Label}}"),
            "{{.Labels}} {{.Label}}"
        );
        // No labels at all (a row without the field): empty, as Docker's.
        let render_bare = |text: &str| Template::parse(text).unwrap().render(&json!({})).unwrap();
        assert_eq!(render_bare(r#"[{{.Label "tier"}}]"#), "[]");
    }

    #[test]
    fn bad_templates_are_parsing_errors() {
        let error = |text: &str| Template::parse(text).unwrap_err().to_string();
        assert_eq!(
            error("{{.Name"),
            "template parsing error: template: :1: unclosed action"
        );
        assert_eq!(
            error("{{if .A}}x"),
            "template parsing error: template: :1: unexpected EOF"
        );
        assert!(error("x{{end}}y").contains("unexpected {{end}}"));
        assert_eq!(
            error("{{frob .A}}"),
            "template parsing error: template: :1: function \"frob\" not defined"
        );
        assert!(error("{{if .A}}\n{{.B | frob}}{{end}}").contains(":2: function \"frob\""));
    }

    #[test]
    fn failures_on_the_data_are_execution_errors() {
        let template = Template::parse("{{index .Config.Cmd 9}}").unwrap();
        assert!(matches!(
            template.render(&data()),
            Err(TemplateError::Execute(_))
        ));
    }
}
