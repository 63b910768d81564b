//! `--format` as Docker's CLI reads it, for every command that has one.
//!
//! A listing (`ps`, `images`, `network ls`, `history`, `stats`) prints rows:
//! no format (or `table`) is the command's own table; `json` prints each
//! row as one line of JSON (Docker 23+); `table TEMPLATE` prints a header
//! row of Docker's column names, then the rows, aligned by
//! [`super::tabwriter`]; any other text is a template applied to each row.
//! One object (`version`, `info`) takes `json` or a template; `inspect -f`
//! takes a template per object, or `json` for them all on one line.

use super::tabwriter;
use super::template::{Template, TemplateError, LABEL_FIELD};
use serde_json::Value;

/// Docker's `--format json`.
const JSON: &str = "{{json .}}";

/// A listing's `--format`, read.
#[derive(Debug)]
pub enum Format {
    /// A header row, then the rows, aligned.
    Table {
        /// The row template, as the header row sees it.
        header: Template,
        /// The row template.
        row: Template,
    },
    /// Each row as the template makes it, one per line.
    Lines(Template),
    /// Each row as one line of JSON, without the fields that stand for
    /// Docker's methods ([`LABEL_FIELD`]).
    Json(Template),
}

/// What a listing knows of its columns.
#[derive(Debug, Clone, Copy)]
pub struct Columns {
    /// Each field a row has, with its column's name (`("ID", "CONTAINER ID")`).
    pub names: &'static [(&'static str, &'static str)],
    /// The table printed without `--format` (`table {{.ID}}\t…`).
    pub default: &'static str,
}

impl Columns {
    /// The header row's data: each field's column name.
    fn header(&self) -> Value {
        Value::Object(
            self.names
                .iter()
                .map(|(field, name)| (field.to_string(), Value::from(*name)))
                .collect(),
        )
    }
}

impl Format {
    /// Reads a listing's `--format` (none, or `table`, is `default`).
    pub fn listing(format: Option<&str>, default: &str) -> Result<Self, TemplateError> {
        let format = match format {
            None | Some("") | Some("table") => default,
            Some("json") => return Ok(Format::Json(Template::parse(JSON)?)),
            Some(format) => format,
        };
        let (table, text) = match format.strip_prefix("table") {
            Some(rest) => (true, rest),
            None => (false, format),
        };
        // Docker's preFormat: spaces trimmed, `\t` and `\n` written out.
        let text = text
            .trim_matches(' ')
            .replace("\\t", "\t")
            .replace("\\n", "\n");
        Ok(match table {
            true => Format::Table {
                header: Template::parse_header(&text)?,
                row: Template::parse(&text)?,
            },
            false => Format::Lines(Template::parse(&text)?),
        })
    }

    /// The rows as Docker prints them, each line ended.
    pub fn render(&self, columns: &Columns, rows: &[Value]) -> Result<String, TemplateError> {
        let mut text = String::new();
        let row = match self {
            Format::Table { header, row } => {
                // As Docker, a header the template cannot make is left short.
                text.push_str(&header.render(&columns.header()).unwrap_or_default());
                text.push('\n');
                row
            }
            Format::Lines(row) | Format::Json(row) => row,
        };
        for value in rows {
            let rendered = match (self, value) {
                (Format::Json(_), Value::Object(fields)) if fields.contains_key(LABEL_FIELD) => {
                    let mut fields = fields.clone();
                    fields.remove(LABEL_FIELD);
                    row.render(&Value::Object(fields))?
                }
                _ => row.render(value)?,
            };
            text.push_str(&rendered);
            text.push('\n');
        }
        Ok(match self {
            Format::Table { .. } => tabwriter::align(&text),
            Format::Lines(_) | Format::Json(_) => text,
        })
    }
}

/// Prints `rows` of a listing in `format` (its `--format`, if any).
pub fn print_listing(
    format: Option<&str>,
    columns: &Columns,
    rows: &[Value],
) -> Result<(), TemplateError> {
    let text = Format::listing(format, columns.default)?.render(columns, rows)?;
    print!("{text}");
    Ok(())
}

/// The template of one object's `--format` (`version`, `info`): `json`, or
/// a template as it is written.
pub fn object_template(format: &str) -> Result<Template, TemplateError> {
    Template::parse(if format == "json" { JSON } else { format })
}

/// `inspect`'s output: an indented JSON array without a format (four
/// spaces a level, as Docker's), the array on one line with `json`, else
/// the template's line per object.
pub fn inspect_text(format: Option<&str>, objects: &[Value]) -> anyhow::Result<String> {
    let array = Value::Array(objects.to_vec());
    Ok(match format {
        None | Some("") => {
            let mut out = Vec::new();
            let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
            let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
            serde::Serialize::serialize(&array, &mut serializer)?;
            let mut text = String::from_utf8(out)?;
            text.push('\n');
            text
        }
        Some("json") => serde_json::to_string(&array)? + "\n",
        Some("table") => anyhow::bail!("\"table\" format is not supported for inspect"),
        Some(format) => {
            let template = Template::parse(format)?;
            let mut text = String::new();
            for object in objects {
                text.push_str(&template.render(object)?);
                text.push('\n');
            }
            text
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const COLUMNS: Columns = Columns {
        names: &[
            ("ID", "CONTAINER ID"),
            ("Names", "NAMES"),
            ("Status", "STATUS"),
        ],
        default: "table {{.ID}}\\t{{.Names}}\\t{{.Status}}",
    };

    fn rows() -> Vec<Value> {
        vec![
            json!({"ID": "0123456789ab", "Names": "web", "Status": "Up 2 seconds"}),
            json!({"ID": "ba9876543210", "Names": "a-much-longer-name", "Status": "Exited (0) 1 second ago"}),
        ]
    }

    fn render(format: Option<&str>) -> String {
        Format::listing(format, COLUMNS.default)
            .unwrap()
            .render(&COLUMNS, &rows())
            .unwrap()
    }

    #[test]
    fn table_prints_dockers_header_then_aligned_rows() {
        // "a-much-longer-name" is 18 wide: its column 21.
        assert_eq!(
            render(Some("table {{.Names}}\\t{{.Status}}")),
            format!(
                "{:<21}STATUS\n{:<21}Up 2 seconds\n{:<21}Exited (0) 1 second ago\n",
                "NAMES", "web", "a-much-longer-name"
            )
        );
        // Docker's functions leave the header's names as they are.
        assert_eq!(
            render(Some("table {{upper .Names}}"))
                .lines()
                .collect::<Vec<_>>(),
            ["NAMES", "WEB", "A-MUCH-LONGER-NAME"]
        );
        // No rows: the header alone.
        let format = Format::listing(Some("table {{.ID}}"), COLUMNS.default).unwrap();
        assert_eq!(format.render(&COLUMNS, &[]).unwrap(), "CONTAINER ID\n");
    }

    #[test]
    fn no_format_and_table_alone_are_the_default_table() {
        let default = render(None);
        assert_eq!(render(Some("table")), default);
        assert!(
            default.starts_with("CONTAINER ID   NAMES                STATUS\n0123456789ab   web "),
            "{default}"
        );
    }

    #[test]
    fn json_is_one_object_per_line() {
        let text = render(Some("json"));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        for (line, row) in lines.iter().zip(rows()) {
            assert_eq!(serde_json::from_str::<Value>(line).unwrap(), row);
        }
    }

    #[test]
    fn json_leaves_out_the_label_method() {
        let row = json!({"Names": "web", LABEL_FIELD: {"tier": "front"}});
        let json = Format::listing(Some("json"), COLUMNS.default).unwrap();
        assert_eq!(
            json.render(&COLUMNS, std::slice::from_ref(&row)).unwrap(),
            "{\"Names\":\"web\"}\n"
        );
        let label =
            Format::listing(Some("{{.Names}} {{.Label \"tier\"}}"), COLUMNS.default).unwrap();
        assert_eq!(label.render(&COLUMNS, &[row]).unwrap(), "web front\n");
    }

    #[test]
    fn a_bare_template_is_applied_to_each_row() {
        assert_eq!(
            render(Some("{{.Names}}:{{.ID}}")),
            "web:0123456789ab\na-much-longer-name:ba9876543210\n"
        );
        assert_eq!(
            render(Some("{{.Names}}\\t|")),
            "web\t|\na-much-longer-name\t|\n"
        );
        assert!(matches!(
            Format::listing(Some("{{.Names"), COLUMNS.default),
            Err(TemplateError::Parse(_))
        ));
    }

    #[test]
    fn inspect_formats() {
        let objects = [json!({"Name": "/a"}), json!({"Name": "/b"})];
        assert_eq!(
            inspect_text(Some("{{.Name}}"), &objects).unwrap(),
            "/a\n/b\n"
        );
        assert_eq!(
            inspect_text(Some("json"), &objects).unwrap(),
            "[{\"Name\":\"/a\"},{\"Name\":\"/b\"}]\n"
        );
        assert!(inspect_text(None, &objects)
            .unwrap()
            .starts_with("[\n    {\n        \""));
        assert!(inspect_text(Some("table"), &objects).is_err());
    }
}
