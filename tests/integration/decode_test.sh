#!/usr/bin/env bash
# `diabridge decode` of every codec on the real captures in tests/data, checked
# against the expected decodings their MANIFEST.md names:
#   dexcom-page   ecc1's G4 pages (hex text and the raw bench-pages.bin) against
#                 ecc1/*.expected.json;
#   dexcom-frame  the Dexcom Studio ↔ G4 USB capture against the corpus's own
#                 packet-by-packet decoding (g4-studio-capture-expected.json);
#   dexcom-share  pydexcom's cassettes of the real Share server against the
#                 values MANIFEST.md and share-api-examples.json state.
# Damaged input must come out as {"error": …} lines, never as values.
source "$(dirname "$0")/lib.bash"

USB="$DIA_TEST_DATA/dexcom-usb"
SHARE="$DIA_TEST_DATA/dexcom-share"
decode() { "$DIABRIDGE" decode "$@" 2>>"$WORK/decode.log"; }

# Every codec in the build is covered here.
"$DIABRIDGE" decode --list | awk 'NR > 1 {print $1}' | sort >"$WORK/codecs.txt"
printf '%s\n' dexcom-frame dexcom-page dexcom-share | diff - "$WORK/codecs.txt" >/dev/null ||
  fail "the codec list changed; cover the new codec here: $(tr '\n' ' ' <"$WORK/codecs.txt")"

# ---- dexcom-page ------------------------------------------------------------
# ecc1 labelled receiver times with America/New_York; MANIFEST: drop the
# offset and compare the wall time with 2009-01-01 + seconds (system_utc).
decode dexcom-page "$USB/ecc1/4.312.data.hex" >"$WORK/egv.jsonl" || fail "dexcom-page: EGV page"
jq -r '.[] | "\(.Timestamp.SystemTime[0:19])|\(.EGV.Glucose)|\(.EGV.Trend)|\(.EGV.Noise)"' \
  "$USB/ecc1/4.312.expected.json" | sort >"$WORK/egv.want"
jq -r 'select(.kind == "egv") | "\(.system_utc[0:19])|\(.mgdl // .special)|\(.trend)|\(.noise)"' \
  "$WORK/egv.jsonl" | sort >"$WORK/egv.got"
[ "$(wc -l <"$WORK/egv.want")" -eq 23 ] || fail "ecc1 4.312 is not 23 EGV records"
diff "$WORK/egv.want" "$WORK/egv.got" >"$WORK/egv.diff" || fail "dexcom-page EGV: $(head "$WORK/egv.diff")"

decode dexcom-page "$USB/ecc1/3.469.data.hex" >"$WORK/sensor.jsonl" || fail "dexcom-page: sensor page"
jq -r '.[] | "\(.Timestamp.SystemTime[0:19])|\(.Sensor.Unfiltered)|\(.Sensor.Filtered)|\(.Sensor.RSSI)"' \
  "$USB/ecc1/3.469.expected.json" | sort >"$WORK/sensor.want"
jq -r 'select(.kind == "sensor") | "\(.system_utc[0:19])|\(.unfiltered)|\(.filtered)|\(.rssi)"' \
  "$WORK/sensor.jsonl" | sort >"$WORK/sensor.got"
[ "$(wc -l <"$WORK/sensor.want")" -eq 21 ] || fail "ecc1 3.469 is not 21 sensor records"
diff "$WORK/sensor.want" "$WORK/sensor.got" >/dev/null || fail "dexcom-page sensor values differ"

decode dexcom-page "$USB/ecc1/5.252.data.hex" >"$WORK/cal.jsonl" || fail "dexcom-page: calibration page"
jq -r '.[] | "\(.Timestamp.SystemTime[0:19])|\(.Calibration.Slope)|\(.Calibration.Intercept)|\(.Calibration.Scale)|\([.Calibration.Data[] | "\(.Glucose)/\(.Raw)"] | sort | join(","))"' \
  "$USB/ecc1/5.252.expected.json" | sort >"$WORK/cal.want"
jq -r 'select(.kind == "cal_set") | "\(.system_utc[0:19])|\(.slope)|\(.intercept)|\(.scale)|\([.calibrations[] | "\(.meter_mgdl)/\(.sensor_raw)"] | sort | join(","))"' \
  "$WORK/cal.jsonl" | sort >"$WORK/cal.got"
[ -s "$WORK/cal.want" ] && diff "$WORK/cal.want" "$WORK/cal.got" >"$WORK/cal.diff" ||
  fail "dexcom-page calibration: $(head -4 "$WORK/cal.diff")"

# bench-pages.bin (PROVENANCE.md: the seven ecc1 pages, raw): the same
# records as the hex pages, and the receiver's serial number from page 0.0.
decode dexcom-page "$USB/bench-pages.bin" >"$WORK/bin.jsonl" || fail "dexcom-page: raw pages"
jq -r 'select(.kind == "egv") | "\(.system_utc[0:19])|\(.mgdl // .special)|\(.trend)|\(.noise)"' \
  "$WORK/bin.jsonl" | sort | diff "$WORK/egv.want" - >/dev/null || fail "raw pages: EGV differ from the hex page"
jq -e -s 'map(select(.kind == "xml")) | length == 1 and (.[0].xml | contains("SerialNumber=\"SM44792675\""))' \
  "$WORK/bin.jsonl" >/dev/null || fail "raw pages: manufacturing XML without serial SM44792675"
pass "dexcom-page: EGV, sensor and calibration records as ecc1 decodes them; raw and hex pages agree"

# ---- dexcom-frame -----------------------------------------------------------
CAP="$USB/g4-studio-capture-alexandre-normand.csv"
EXP="$USB/g4-studio-capture-expected.json"
decode dexcom-frame "$CAP" >"$WORK/frames.jsonl" || fail "dexcom-frame: capture"
[ "$(jq -s 'length' "$WORK/frames.jsonl")" -eq "$(jq '.verification.packets' "$EXP")" ] ||
  fail "dexcom-frame: not all $(jq '.verification.packets' "$EXP") packets decoded"
jq -e -s 'all(.[]; has("error") | not)' "$WORK/frames.jsonl" >/dev/null || fail "dexcom-frame: a good packet was rejected"
# line, direction, length and code of every packet
jq -r '.exchanges[] | "\(.line)|\(.dir)|\(.len)|\(.cmd)"' "$EXP" >"$WORK/f.want"
jq -r '"\(.line)|\(.dir)|\(.len)|\(.code)"' "$WORK/frames.jsonl" >"$WORK/f.got"
diff "$WORK/f.want" "$WORK/f.got" >/dev/null || fail "dexcom-frame: packets differ: $(diff "$WORK/f.want" "$WORK/f.got" | head -3)"
# what the requests ask for and what the replies say, where the corpus decoded it
jq -r '.exchanges[] | [.line, (.name // .reply_to), .payload_len, .args.record_type, .args.first_page,
    .args.page_count, (.page_range | if . == [4294967295, 4294967295] then "empty" else . end),
    .pages, (if .reply_to == "READ_SYSTEM_TIME" then .u32 else null end), .i32, .text,
    (.page_header | if . then [.rtype, .rev, .page, .first, .nrec] else null end)] | tojson' "$EXP" >"$WORK/m.want"
jq -r '[.line, (if .dir == "out" then .command else .reply_to end), .payload_len, (if .dir == "out" then .record_type else null end),
    .first_page, .page_count, (if .page_range_empty then "empty" else .page_range end), .pages,
    .system_time, .display_time_offset, .transmitter_id,
    (.page_header | if . then [.record_type, .revision, .page_number, .first_record_index, .num_records] else null end)] | tojson' \
  "$WORK/frames.jsonl" >"$WORK/m.got"
# diabridge names only the commands it may send; the corpus also names
# Studio's others (READ_FIRMWARE_SETTINGS, READ_DEVICE_MODE, 0x33).
paste -d'\t' "$WORK/m.want" "$WORK/m.got" | jq -R -r 'split("\t") | (.[0] | fromjson) as $w | (.[1] | fromjson) as $g
  | if ($g[1] == "UNKNOWN") then ($w | .[1] = "UNKNOWN") else $w end | tojson' >"$WORK/m.want2"
diff "$WORK/m.want2" "$WORK/m.got" >"$WORK/m.diff" || fail "dexcom-frame: meanings differ: $(head -4 "$WORK/m.diff")"
unknown=$(jq -r 'select(.command == "UNKNOWN") | .code' "$WORK/frames.jsonl" | sort -u | tr '\n' ' ')
[ "$unknown" = "43 51 54 " ] || fail "dexcom-frame: unexpected unknown commands: $unknown"
jq -e -s 'any(.[]; .transmitter_id == "60HMW") and any(.[]; .system_utc == "2013-09-14T02:43:21Z")
  and any(.[]; .firmware_version == "2.0.1.104") and any(.[]; .glucose_unit == "mg/dL")' \
  "$WORK/frames.jsonl" >/dev/null || fail "dexcom-frame: small replies (MANIFEST: 60HMW, 2013-09-14T02:43:21, mg/dL)"
# a damaged packet is an error line, and the rest still decodes
sed '41s/C9 C5/C9 C6/' "$CAP" >"$WORK/bad.csv"
cmp -s "$CAP" "$WORK/bad.csv" && fail "could not damage line 41 of the capture"
decode dexcom-frame "$WORK/bad.csv" >"$WORK/bad.jsonl" || fail "dexcom-frame: one bad packet failed the whole file"
jq -e -s '[.[] | select(.error) | {error, line}] == [{"error": "DIA_ERR_CRC", "line": 41}] and length == 171
  and all(.[]; .system_time == null)' "$WORK/bad.jsonl" >/dev/null ||
  fail "dexcom-frame: the damaged system-time reply was not one error line: $(jq -c 'select(.error)' "$WORK/bad.jsonl")"
pass "dexcom-frame: all 171 packets of the G4 capture, with the corpus's lengths, codes, arguments and replies"

# ---- dexcom-share -----------------------------------------------------------
CAS="$SHARE/pydexcom-cassettes"
decode dexcom-share "$CAS/latest-glucose-maxcount1-minutes1440.yaml" >"$WORK/share.jsonl" ||
  fail "dexcom-share: readings cassette"
# MANIFEST: 224 Flat, then two later recordings 216 Flat and 175 Flat
[ "$(jq -r '"\(.mgdl) \(.trend_name)"' "$WORK/share.jsonl" | tr '\n' ',')" = "224 Flat,216 Flat,175 Flat," ] ||
  fail "dexcom-share: readings $(jq -c . "$WORK/share.jsonl")"
# the first one field by field, as share-api-examples.json expects it
jq -c '.readings[] | select(.name == "current_2025_pydexcom_cassette") | .expected[0]
  | {mgdl: .value_mgdl, trend: .trend_int, wt_ms: .wt_epoch_ms, st_ms: .st_epoch_ms, dt_ms: .dt_epoch_ms,
     wt_utc: .wt_iso_utc, utc_offset_min: (.dt_utc_offset | (if .[0:1] == "-" then -1 else 1 end)
       * ((.[1:3] | tonumber) * 60 + (.[3:5] | tonumber)))}' "$SHARE/share-api-examples.json" >"$WORK/share.want"
[ -s "$WORK/share.want" ] || fail "share-api-examples.json has no current_2025_pydexcom_cassette"
head -1 "$WORK/share.jsonl" | jq -c '{mgdl, trend, wt_ms, st_ms, dt_ms, wt_utc, utc_offset_min}' >"$WORK/share.got"
diff "$WORK/share.want" "$WORK/share.got" >/dev/null ||
  fail "dexcom-share: first reading $(cat "$WORK/share.got"), expected $(cat "$WORK/share.want")"
# an expired session, a new login, the read again (MANIFEST); ids never printed
decode dexcom-share "$CAS/session-expired-SessionIdNotFound-then-relogin.yaml" >"$WORK/expired.jsonl" ||
  fail "dexcom-share: session cassette"
jq -e -s '.[0].fault == "SessionIdNotFound" and .[0].fault_class == "session" and .[1].login == "id"
  and .[2].mgdl == 224' "$WORK/expired.jsonl" >/dev/null || fail "dexcom-share: session expiry $(head -3 "$WORK/expired.jsonl")"
decode dexcom-share "$CAS/us-authenticate-wrong-password-AccountPasswordInvalid.yaml" >"$WORK/auth.jsonl" ||
  fail "dexcom-share: wrong-password cassette"
jq -e -s 'length > 0 and all(.[]; .fault == "AccountPasswordInvalid" and .fault_class == "auth")' \
  "$WORK/auth.jsonl" >/dev/null || fail "dexcom-share: wrong password not an auth fault"
cat "$WORK"/share.jsonl "$WORK"/expired.jsonl "$WORK"/auth.jsonl | grep -q '55555555\|33333333\|99999999' &&
  fail "dexcom-share: an account or session id was printed"
decode dexcom-share "$CAS/glucose-readings-maxcount_minutes-0-10.yaml" >"$WORK/empty.jsonl" ||
  fail "dexcom-share: empty answer"
[ ! -s "$WORK/empty.jsonl" ] || fail "dexcom-share: readings out of an empty answer: $(cat "$WORK/empty.jsonl")"
# a reading whose value cannot be right is an error line, never a value
printf '[{"WT":"Date(1745081013817)","ST":"Date(1745081013817)","DT":"Date(1745081013817-0400)","Value":1224,"Trend":"Flat"}]' \
  >"$WORK/bad.json"
decode dexcom-share "$WORK/bad.json" >"$WORK/bad-share.jsonl" && fail "dexcom-share: an implausible answer decoded fine"
jq -e -s 'length == 1 and .[0].error == "DIA_ERR_IMPLAUSIBLE" and .[0].count == 1' "$WORK/bad-share.jsonl" >/dev/null ||
  fail "dexcom-share: implausible value not reported: $(cat "$WORK/bad-share.jsonl")"
pass "dexcom-share: readings, faults and logins of the real cassettes as MANIFEST.md states; no id printed"

grep -l "AddressSanitizer\|runtime error" "$WORK/decode.log" && fail "decode crashed: $(tail "$WORK/decode.log")"
echo "1 passed, 0 failed"
