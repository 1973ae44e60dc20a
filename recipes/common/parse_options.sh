# shellcheck shell=bash
# Command-line options for the recipe scripts, Kaldi style: sourced right after a script's
# configuration section (its defaulted variables), it turns "--foo-bar VALUE" or
# "--foo-bar=VALUE" into foo_bar=VALUE and shifts the options off "$@", leaving the
# positional arguments.
#
#   - only variables the script already defines can be set: an unknown option is an error;
#   - a variable whose default is true or false only takes true or false;
#   - "--config FILE" reads options from FILE first (one "--name=value" per line, "#"
#     comments), so the command line wins over the file;
#   - "--help" prints $usage (set by the script before sourcing this file) and exits 0;
#   - parsing stops at the first argument that is not an option, or after "--".
#
# Errors print one line on stderr and exit 2. The helper's own variables start with "_po_",
# which no option name can produce.

_po_prog=${prog:-${0##*/}}

# Pull "--config FILE" out first so that the file's options come before the command line's.
_po_args=()
_po_config_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --config=*|--config)
      if [ "$1" = --config ]; then
        [ $# -ge 2 ] || { echo "$_po_prog: error: option --config needs a value" >&2; exit 2; }
        _po_config=$2; shift 2
      else
        _po_config=${1#--config=}; shift
      fi
      [ -f "$_po_config" ] || { echo "$_po_prog: error: config file $_po_config does not exist" >&2; exit 2; }
      while IFS= read -r _po_line || [ -n "$_po_line" ]; do
        _po_line=${_po_line%%#*}
        _po_line=${_po_line#"${_po_line%%[![:space:]]*}"}
        _po_line=${_po_line%"${_po_line##*[![:space:]]}"}
        [ -z "$_po_line" ] && continue
        case "$_po_line" in
          --*=*) _po_config_args+=("$_po_line") ;;
          *) echo "$_po_prog: error: $_po_config: expected --name=value, got '$_po_line'" >&2; exit 2 ;;
        esac
      done < "$_po_config"
      ;;
    --) _po_args+=("$@"); break ;;
    *) _po_args+=("$1"); shift ;;
  esac
done
set -- ${_po_config_args[@]+"${_po_config_args[@]}"} ${_po_args[@]+"${_po_args[@]}"}

while [ $# -gt 0 ]; do
  case "$1" in
    --) shift; break ;;
    --help|-h) printf '%s\n' "${usage:-Usage: $_po_prog [options]}"; exit 0 ;;
    --*=*) _po_name=${1%%=*}; _po_value=${1#*=}; shift ;;
    --?*)
      [ $# -ge 2 ] || { echo "$_po_prog: error: option $1 needs a value" >&2; exit 2; }
      _po_name=$1; _po_value=$2; shift 2 ;;
    *) break ;;
  esac
  _po_var=${_po_name#--}
  _po_var=${_po_var//-/_}
  if [[ ! $_po_var =~ ^[a-z][a-z0-9_]*$ ]] || [ -z "${!_po_var+set}" ]; then
    echo "$_po_prog: error: unknown option $_po_name (see $_po_prog --help)" >&2; exit 2
  fi
  case "${!_po_var}" in
    true|false)
      case "$_po_value" in
        true|false) ;;
        *) echo "$_po_prog: error: option $_po_name takes true or false, got '$_po_value'" >&2; exit 2 ;;
      esac ;;
  esac
  printf -v "$_po_var" '%s' "$_po_value"
done
unset _po_args _po_config_args _po_config _po_line _po_name _po_value _po_var
