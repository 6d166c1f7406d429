# Sourced by the bench scripts: BENCHMARKS.md ($OUT) holds sections between `<!-- NAME:start -->`
# and `<!-- NAME:end -->` that one script writes and the others keep as they are.

# section NAME PLACEHOLDER: the text of NAME's section in $OUT, else PLACEHOLDER.
section() {
  if [ -f "$OUT" ] && grep -q "<!-- $1:start -->" "$OUT"; then
    awk -v s="<!-- $1:start -->" -v e="<!-- $1:end -->" '$0 == e { p = 0 } p { print } $0 == s { p = 1 }' "$OUT"
  else
    echo "$2"
  fi
}

# write_section NAME TITLE TEXT: replaces NAME's section in $OUT with TEXT, or appends it under
# `## TITLE` when $OUT has none.
write_section() {
  local tmp
  tmp=$(mktemp "$OUT.XXXXXX")
  if grep -q "<!-- $1:start -->" "$OUT"; then
    text=$3 awk -v s="<!-- $1:start -->" -v e="<!-- $1:end -->" '
      $0 == s { print; print ENVIRON["text"]; skip = 1; next }
      $0 == e { skip = 0 }
      !skip { print }' "$OUT" >"$tmp"
  else
    { cat "$OUT"; printf '\n## %s\n\n<!-- %s:start -->\n%s\n<!-- %s:end -->\n' "$2" "$1" "$3" "$1"; } >"$tmp"
  fi
  mv "$tmp" "$OUT"
}
