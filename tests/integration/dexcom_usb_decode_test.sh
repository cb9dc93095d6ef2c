#!/usr/bin/env bash
# `diabridge decode dexcom-page` on input that is not pages at all: an empty
# file, text that is not hex, hex too short for a page, a binary scrap.  Each
# fails, and says what it found and what is expected (528-byte pages or hex
# text) instead of "data is shorter than its layout requires".
source "$(dirname "$0")/lib.bash"

USB="$DIA_TEST_DATA/dexcom-usb"

refused() { # NAME FILE WHAT: decode must fail, naming WHAT and the expected input
  local name=$1 file=$2 what=$3
  if "$DIABRIDGE" decode dexcom-page "$file" >"$WORK/$name.out" 2>"$WORK/$name.err"; then
    fail "$name: accepted"
  fi
  grep -qF "$what" "$WORK/$name.err" || fail "$name: does not say \"$what\": $(cat "$WORK/$name.err")"
  grep -q "raw 528-byte pages" "$WORK/$name.err" && grep -q "hex text" "$WORK/$name.err" \
    || fail "$name: does not say what is expected: $(cat "$WORK/$name.err")"
  ! grep -q "shorter than its layout" "$WORK/$name.err" || fail "$name: still the codec's jargon"
  [ ! -s "$WORK/$name.out" ] || fail "$name: printed records: $(head -2 "$WORK/$name.out")"
}

: >"$WORK/empty"
refused empty "$WORK/empty" "the file is empty"

printf '01 02 03\n0x04 05\n' >"$WORK/typo.hex"
refused typo "$WORK/typo.hex" "'x' at line 2, column 2"

printf '01 02 0\n' >"$WORK/odd.hex"
refused odd "$WORK/odd.hex" "odd number of digits (5)"

printf '\n \n' >"$WORK/blank.hex"
refused blank "$WORK/blank.hex" "only blank lines"

printf '0102030405\n' >"$WORK/short.hex"
refused short-hex "$WORK/short.hex" "the hex holds 5 bytes, less than one page"

head -c 100 "$USB/bench-pages.bin" >"$WORK/scrap.bin"
refused scrap "$WORK/scrap.bin" "the file holds 100 bytes, less than one page"
pass "empty, not hex, odd hex, blank, short hex and short binary: each refused with what is expected"

# The same verb still reads what it is meant for.
"$DIABRIDGE" decode dexcom-page "$USB/ecc1/4.312.data.hex" >"$WORK/ok.jsonl" 2>/dev/null \
  || fail "a real EGV page (hex) was refused"
jq -e -s 'length > 0 and all(.[]; has("error") | not)' "$WORK/ok.jsonl" >/dev/null \
  || fail "a real EGV page decoded with errors"
pass "a real page still decodes"
echo "1 passed, 0 failed"
