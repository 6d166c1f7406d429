#!/usr/bin/env zsh
# Completes a command line in a real interactive zsh (under zsh/zpty) with the completion
# functions in directory $1; $2 is the line up to the cursor. Prints one candidate a line.
emulate -L zsh
zmodload zsh/zpty || exit 1
dir=$1 line=$2
setup=$(mktemp)
trap 'rm -f $setup' EXIT
cat >$setup <<'SETUP'
PROMPT=
fpath=($COMPLETION_DIR $fpath)
autoload -Uz compinit && compinit -u -D
zstyle ':completion:*' list-grouped false
zstyle ':completion:*' insert-tab false
zstyle ':completion:*' matcher-list ''
# Every candidate zsh would offer, printed instead of inserted.
compadd () {
  if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then builtin compadd "$@"; return $?; fi
  typeset -a hits; builtin compadd -A hits "$@"; (( $#hits )) || return 1
  print -lr -- '' "HIT:"${^hits}
}
complete-word () { unset 'compstate[vared]'; _main_complete "$@"; compstate[insert]=; print -r -- '' "DONE:$((6*7))"; }
zle -C complete-word .complete-word complete-word
bindkey '^I' complete-word
SETUP
COMPLETION_DIR=$dir zpty z "COMPLETION_DIR=${(q)dir} zsh -f -i"
zpty -w z "source ${(q)setup}"
zpty -n -w z "$line"$'\t'
out= tries=0
# At most 10 s: a script that never finishes completing is a failure, not a hang.
until [[ $out == *DONE:42* ]]; do
  (( tries++ < 200 )) || { print -u2 "zsh completion did not finish: $out"; exit 1; }
  if zpty -r -t z chunk; then out+=$chunk; else sleep 0.05; fi
done
zpty -d z
print -r -- "$out" | tr -d '\r' | sed -n 's/^HIT://p'
