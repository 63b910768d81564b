//! Columns as Docker's CLI aligns them: Go's `text/tabwriter` with Docker's
//! settings (minimum cell width 10, padding 3, spaces). A cell is text
//! ended by a tab; the text after a line's last tab is not a cell and is
//! never padded. Consecutive lines with a cell in a column form a block
//! whose cells share a width, exactly as Go computes it.

/// Docker's `tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)`.
const MIN_WIDTH: usize = 10;
const PADDING: usize = 3;

/// One line's cells: every tab-terminated one, then the rest of the line.
fn cells(line: &str) -> Vec<&str> {
    line.split('\t').collect()
}

/// Aligns `text` (lines of tab-separated cells).
pub fn align(text: &str) -> String {
    let ends_with_newline = text.ends_with('\n');
    let body = text.strip_suffix('\n').unwrap_or(text);
    let lines: Vec<Vec<&str>> = body.split('\n').map(cells).collect();
    let mut widths = Vec::new();
    let mut out = String::with_capacity(text.len() * 2);
    format(&lines, &mut widths, &mut out);
    if !ends_with_newline {
        out.pop();
    }
    out
}

/// Go's `Writer.format`: finds the blocks of lines that have a cell in the
/// next column, sizes that column per block, and recurses to the right.
fn format(lines: &[Vec<&str>], widths: &mut Vec<usize>, out: &mut String) {
    let column = widths.len();
    let mut start = 0;
    let mut this = 0;
    while this < lines.len() {
        // `len - 1`: the last part of a line is no cell.
        if column >= lines[this].len() - 1 {
            this += 1;
            continue;
        }
        write_lines(&lines[start..this], widths, out);
        start = this;
        let mut width = MIN_WIDTH;
        while this < lines.len() && column < lines[this].len() - 1 {
            width = width.max(lines[this][column].chars().count() + PADDING);
            this += 1;
        }
        widths.push(width);
        format(&lines[start..this], widths, out);
        widths.pop();
        start = this;
    }
    write_lines(&lines[start..], widths, out);
}

/// Writes lines whose column widths are all known, padding each cell that
/// has a width.
fn write_lines(lines: &[Vec<&str>], widths: &[usize], out: &mut String) {
    for line in lines {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if let Some(width) = widths.get(j).filter(|_| j + 1 < line.len()) {
                let used = cell.chars().count();
                out.extend(std::iter::repeat_n(' ', width.saturating_sub(used)));
            }
        }
        out.push('\n');
    }
}

/// Prints `header` and `rows` as aligned columns, as Docker's tables are.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut text = header.join("\t");
    text.push('\n');
    for row in rows {
        text.push_str(&row.join("\t"));
        text.push('\n');
    }
    print!("{}", align(&text));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_as_dockers_tabwriter_aligns_them() {
        // A column is at least 10 wide, else its widest cell plus 3.
        // "long-container-name" is 19 wide: its column 22.
        assert_eq!(
            align("NAMES\tSTATUS\nweb\tUp 2 seconds\nlong-container-name\tExited (0)\n"),
            format!(
                "{:<22}STATUS\n{:<22}Up 2 seconds\n{:<22}Exited (0)\n",
                "NAMES", "web", "long-container-name"
            )
        );
        assert_eq!(
            align("CONTAINER ID\tIMAGE\tNAMES\nabc\tbusybox\tweb\n"),
            "CONTAINER ID   IMAGE     NAMES\nabc            busybox   web\n"
        );
    }

    #[test]
    fn the_last_part_of_a_line_is_never_padded() {
        assert_eq!(align("a\tb\t\n"), "a         b         \n");
        assert_eq!(align("one line"), "one line");
        assert_eq!(align(""), "");
    }

    #[test]
    fn blocks_are_the_lines_that_share_a_column() {
        // The middle line has no tab: it splits the column in two blocks.
        assert_eq!(
            align("a\tx\nno tab here\nlonger-cell\ty\n"),
            "a         x\nno tab here\nlonger-cell   y\n"
        );
    }
}
