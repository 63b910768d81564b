//! The subset of Go templates that `docker inspect -f` and `docker ps
//! --format` users reach for: `{{.A.B}}`, `{{json .A}}`, `{{upper .A}}`,
//! `{{lower .A}}`, `{{len .A}}`, `{{join .A ","}}`, `{{range .A}}…{{end}}`
//! (with `.` bound to each element) and literal text, `\t` and `\n`.

use serde_json::Value;
use thiserror::Error;

/// A template that could not be parsed or applied.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TemplateError {
    /// Unbalanced or malformed braces or actions.
    #[error("template parsing error: {0}")]
    Parse(String),
    /// A function Hull does not know.
    #[error("template: function \"{0}\" not defined")]
    UnknownFunction(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Action(Pipeline),
    Range(Pipeline, Vec<Node>),
}

#[derive(Debug, Clone, PartialEq)]
struct Pipeline {
    function: Option<String>,
    path: Vec<String>,
    argument: Option<String>,
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
}

fn parse_pipeline(action: &str) -> Result<Pipeline, TemplateError> {
    let words = split_words(action);
    let (function, rest) = match words.first() {
        Some(first) if !first.starts_with('.') => (Some(first.clone()), &words[1..]),
        _ => (None, &words[..]),
    };
    if let Some(name) = &function {
        if !matches!(
            name.as_str(),
            "json" | "upper" | "lower" | "len" | "join" | "title"
        ) {
            return Err(TemplateError::UnknownFunction(name.clone()));
        }
    }
    let field = rest
        .first()
        .ok_or_else(|| TemplateError::Parse(format!("missing field in {{{{{action}}}}}")))?;
    if !field.starts_with('.') {
        return Err(TemplateError::Parse(format!(
            "unexpected {field:?} in {{{{{action}}}}}"
        )));
    }
    let path = field
        .split('.')
        .filter(|p| !p.is_empty())
        .map(String::from)
        .collect();
    let argument = rest.get(1).map(|a| a.trim_matches('"').to_string());
    Ok(Pipeline {
        function,
        path,
        argument,
    })
}

/// Splits on spaces, keeping quoted strings whole.
fn split_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            ' ' if !quoted => {
                if !current.is_empty() {
                    words.push(std::mem::take(&mut current));
                }
            }
            _ => current.push(c),
        }
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

impl Template {
    /// A `--format` value: `table TEMPLATE` (whether to print a header row
    /// first) or a bare template.
    pub fn parse_format(format: &str) -> Result<(bool, Template), TemplateError> {
        // Docker's `--format json`: each row as one line of JSON.
        if format.trim() == "json" {
            return Ok((false, Template::parse("{{json .}}")?));
        }
        match format.strip_prefix("table") {
            Some(rest) => Ok((true, Template::parse(rest.trim_start())?)),
            None => Ok((false, Template::parse(format)?)),
        }
    }

    /// Parses `text`.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let text = text.replace("\\t", "\t").replace("\\n", "\n");
        let mut stack: Vec<(Pipeline, Vec<Node>)> = Vec::new();
        let mut nodes: Vec<Node> = Vec::new();
        let mut rest = text.as_str();
        while let Some(open) = rest.find("{{") {
            let current = stack.last_mut().map_or(&mut nodes, |(_, body)| body);
            if open > 0 {
                current.push(Node::Text(rest[..open].to_string()));
            }
            let close = rest[open..]
                .find("}}")
                .ok_or_else(|| TemplateError::Parse("unclosed action".into()))?
                + open;
            let action = rest[open + 2..close].trim();
            rest = &rest[close + 2..];
            if action == "end" {
                let (pipeline, body) = stack
                    .pop()
                    .ok_or_else(|| TemplateError::Parse("unexpected {{end}}".into()))?;
                let parent = stack.last_mut().map_or(&mut nodes, |(_, body)| body);
                parent.push(Node::Range(pipeline, body));
            } else if let Some(range) = action.strip_prefix("range ") {
                stack.push((parse_pipeline(range.trim())?, Vec::new()));
            } else {
                current.push(Node::Action(parse_pipeline(action)?));
            }
        }
        if !stack.is_empty() {
            return Err(TemplateError::Parse(
                "unexpected EOF: {{range}} without {{end}}".into(),
            ));
        }
        if !rest.is_empty() {
            nodes.push(Node::Text(rest.to_string()));
        }
        Ok(Self { nodes })
    }

    /// Applies the template to `data`.
    pub fn render(&self, data: &Value) -> String {
        let mut out = String::new();
        render_nodes(&self.nodes, data, &mut out);
        out
    }
}

fn lookup<'a>(data: &'a Value, path: &[String]) -> &'a Value {
    path.iter()
        .fold(data, |value, key| value.get(key).unwrap_or(&Value::Null))
}

/// A value as Go's template prints it.
fn plain(value: &Value) -> String {
    match value {
        Value::Null => "<no value>".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(plain).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(map) => format!(
            "map[{}]",
            map.iter()
                .map(|(k, v)| format!("{k}:{}", plain(v)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        other => other.to_string(),
    }
}

fn apply(pipeline: &Pipeline, data: &Value) -> String {
    let value = lookup(data, &pipeline.path);
    match pipeline.function.as_deref() {
        Some("json") => serde_json::to_string(value).unwrap_or_default(),
        Some("upper") => plain(value).to_uppercase(),
        Some("lower") => plain(value).to_lowercase(),
        Some("title") => {
            let text = plain(value);
            let mut chars = text.chars();
            chars
                .next()
                .map(|c| c.to_uppercase().chain(chars).collect())
                .unwrap_or_default()
        }
        Some("len") => match value {
            Value::Array(items) => items.len().to_string(),
            Value::Object(map) => map.len().to_string(),
            Value::String(s) => s.len().to_string(),
            _ => "0".into(),
        },
        Some("join") => match value {
            Value::Array(items) => items
                .iter()
                .map(plain)
                .collect::<Vec<_>>()
                .join(pipeline.argument.as_deref().unwrap_or("")),
            other => plain(other),
        },
        _ => plain(value),
    }
}

fn render_nodes(nodes: &[Node], data: &Value, out: &mut String) {
    for node in nodes {
        match node {
            Node::Text(text) => out.push_str(text),
            Node::Action(pipeline) => out.push_str(&apply(pipeline, data)),
            Node::Range(pipeline, body) => match lookup(data, &pipeline.path) {
                Value::Array(items) => items.iter().for_each(|item| render_nodes(body, item, out)),
                Value::Object(map) => map.values().for_each(|item| render_nodes(body, item, out)),
                _ => {}
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_dockers_favourites() {
        let data = json!({"State": {"Pid": 42, "Status": "running"}, "Config": {"Env": ["A=1", "B=2"]}, "Name": "/web"});
        let render = |t: &str| Template::parse(t).unwrap().render(&data);
        assert_eq!(render("{{.State.Pid}}"), "42");
        assert_eq!(
            render("{{ .Name }} is {{.State.Status}}"),
            "/web is running"
        );
        assert_eq!(
            render("{{json .State}}"),
            r#"{"Pid":42,"Status":"running"}"#
        );
        assert_eq!(render("{{range .Config.Env}}{{.}};{{end}}"), "A=1;B=2;");
        assert_eq!(render("{{join .Config.Env \",\"}}"), "A=1,B=2");
        assert_eq!(
            render("{{upper .State.Status}}\\t{{len .Config.Env}}"),
            "RUNNING\t2"
        );
        assert_eq!(render("{{.Nope}}"), "<no value>");
    }

    #[test]
    fn format_json_is_one_json_line_per_row() {
        let (table, template) = Template::parse_format("json").unwrap();
        assert!(!table);
        let row = json!({"Names": "web", "Status": "Up 2 seconds"});
        let line = template.render(&row);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&line).unwrap(),
            row
        );
        assert!(!line.contains('\n'));
    }

    #[test]
    fn rejects_bad_templates() {
        assert!(matches!(
            Template::parse("{{.A"),
            Err(TemplateError::Parse(_))
        ));
        assert!(matches!(
            Template::parse("{{range .A}}x"),
            Err(TemplateError::Parse(_))
        ));
        assert_eq!(
            Template::parse("{{frob .A}}").unwrap_err(),
            TemplateError::UnknownFunction("frob".into())
        );
    }
}
