//! kubectl-looking tables: no borders, upper-case headers, columns apart by three spaces.

use std::io::{self, Write};

use comfy_table::presets::NOTHING;
use comfy_table::{Cell, CellAlignment, Color, ContentArrangement, Table};
use unicode_width::UnicodeWidthStr;

use crate::settings::Style;

pub fn new(style: &Style, headers: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled);
    if style.headers {
        t.set_header(headers.iter().map(Cell::new));
    }
    if !style.color {
        t.force_no_tty();
    } else {
        t.enforce_styling();
    }
    t
}

/// Pads like kubectl (no left padding, three spaces between columns) and right-aligns numbers.
pub fn finish(t: &mut Table, numeric: &[usize]) {
    let n = t.column_count();
    for i in 0..n {
        if let Some(c) = t.column_mut(i) {
            c.set_padding((0, if i + 1 == n { 0 } else { 3 }));
            if numeric.contains(&i) {
                c.set_cell_alignment(CellAlignment::Right);
            }
        }
    }
}

pub fn write(out: &mut impl Write, t: &Table) -> io::Result<()> {
    if t.row_count() == 0 && t.header().is_none() {
        return Ok(());
    }
    for line in t.lines() {
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// Writes a table of plain text row by row, laid out as [`finish`] lays out a comfy-table (no left
/// padding, three spaces between columns, nothing after the last): the widths come from a first
/// pass over `rows`, so no row is held. For tables too long to hold in memory (a row per IP).
pub fn write_streamed<I>(
    out: &mut impl Write,
    style: &Style,
    headers: &[&str],
    rows: impl Fn() -> I,
) -> io::Result<()>
where
    I: Iterator<Item = Vec<String>>,
{
    let mut widths: Vec<usize> = headers
        .iter()
        // comfy-table never makes a column narrower than one character.
        .map(|h| if style.headers { h.width().max(1) } else { 1 })
        .collect();
    for row in rows() {
        for (w, cell) in widths.iter_mut().zip(&row) {
            *w = (*w).max(cell.width());
        }
    }
    let mut line = String::new();
    let mut write_line = |out: &mut dyn Write, cells: &mut dyn Iterator<Item = &str>| {
        line.clear();
        for (i, cell) in cells.enumerate() {
            line.push_str(cell);
            if i + 1 < widths.len() {
                let pad = widths[i] - cell.width() + 3;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        writeln!(out, "{}", line.trim_end())
    };
    if style.headers {
        write_line(out, &mut headers.iter().copied())?;
    }
    for row in rows() {
        write_line(out, &mut row.iter().map(String::as_str))?;
    }
    Ok(())
}

pub fn colored(style: &Style, text: String, color: Color) -> Cell {
    let cell = Cell::new(text);
    if style.color { cell.fg(color) } else { cell }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Output;
    use proptest::prelude::*;

    proptest! {
        // The streamed table is the comfy-table one, cell for cell, with and without headers.
        #[test]
        fn streamed_tables_are_laid_out_as_comfy_tables(
            rows in proptest::collection::vec(proptest::collection::vec("[a-z0-9./:-]{0,12}( [a-z]{1,5}){0,2}", 4), 0..12),
            headers in any::<bool>(),
        ) {
            let style = Style { output: Output::Table, color: false, headers };
            let names = ["KIND", "IP", "SERVICE", "ACTION"];
            let mut t = new(&style, &names);
            for r in &rows {
                t.add_row(r.iter().map(Cell::new));
            }
            finish(&mut t, &[]);
            let mut want = Vec::new();
            write(&mut want, &t).unwrap();
            let mut got = Vec::new();
            write_streamed(&mut got, &style, &names, || rows.iter().cloned()).unwrap();
            prop_assert_eq!(String::from_utf8(got).unwrap(), String::from_utf8(want).unwrap());
        }
    }
}
