//! kubectl-looking tables: no borders, upper-case headers, columns apart by three spaces.

use std::io::{self, Write};

use comfy_table::presets::NOTHING;
use comfy_table::{Cell, CellAlignment, Color, ContentArrangement, Table};

use crate::render::Style;

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

pub fn colored(style: &Style, text: String, color: Color) -> Cell {
    let cell = Cell::new(text);
    if style.color { cell.fg(color) } else { cell }
}
