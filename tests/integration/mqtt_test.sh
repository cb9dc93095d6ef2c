#!/usr/bin/env bash
# Sink mqtt against a real mosquitto (specs/smartpix-and-sinks.md §5.1), started
# here on free loopback ports with a plain, a password and a TLS listener; the
# test CA and server certificate are made with openssl on the spot.
# Checks: what the sink publishes arrives (a persistent mosquitto_sub session
# sees every record_key the journal says was delivered), the broker restarted
# mid-run loses nothing, a wrong password is a clear error and loses nothing,
# TLS works with the right CA and is refused with a wrong one, and the
# retained latest glucose, availability and Home Assistant discovery configs
# are present afterwards.
source "$(dirname "$0")/lib.bash"

for tool in mosquitto mosquitto_sub mosquitto_passwd openssl sqlite3 jq; do
  command -v "$tool" >/dev/null || PATH="$PATH:/usr/sbin"
  command -v "$tool" >/dev/null || fail "$tool is not installed (scripts/bootstrap.sh installs it)"
done

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

M="$WORK/mosquitto"
mkdir -p "$M"
chmod 755 "$WORK" "$M" # mosquitto started as root drops to user mosquitto (§5.1 gotcha 1)
mosquitto_passwd -c -b "$M/passwd" cgmd 's3cret-pw' 2>/dev/null
ossl() { openssl "$@" >/dev/null 2>&1 || fail "openssl $1 failed"; }
ossl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=test-ca -keyout "$M/ca.key" -out "$M/ca.crt"
ossl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=other-ca -keyout "$M/other.key" -out "$M/other.crt"
ossl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout "$M/server.key" -out "$M/server.csr"
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$M/san.ext"
ossl x509 -req -in "$M/server.csr" -CA "$M/ca.crt" -CAkey "$M/ca.key" -CAcreateserial -days 2 \
  -extfile "$M/san.ext" -out "$M/server.crt"
chmod 644 "$M"/*

# `user`: started as root, mosquitto would switch to user mosquitto, which
# cannot write this folder; as anyone else the line changes nothing.
write_config() {
  cat >"$M/mosquitto.conf" <<CONF
user $(id -un)
per_listener_settings true
persistence true
persistence_location $M/
log_dest file $M/broker.log
listener $PLAIN 127.0.0.1
allow_anonymous true
listener $PW 127.0.0.1
allow_anonymous false
password_file $M/passwd
listener $TLS 127.0.0.1
allow_anonymous false
password_file $M/passwd
cafile $M/ca.crt
certfile $M/server.crt
keyfile $M/server.key
CONF
}
BROKER=
start_broker() { # → 0 when all three listeners answer
  mosquitto -c "$M/mosquitto.conf" &
  BROKER=$!
  PIDS+=($BROKER)
  wait_for "port_open \$PLAIN && port_open \$PW && port_open \$TLS" 10 && return 0
  kill "$BROKER" 2>/dev/null || true
  return 1
}
# A port picked free may be taken by someone else before mosquitto binds it:
# then pick new ones (the later restart reuses the ports that worked).
started=0
for attempt in 1 2 3; do
  pick_port PLAIN; pick_port PW; pick_port TLS
  write_config
  if start_broker; then started=1; break; fi
done
[ $started = 1 ] || fail "mosquitto did not start: $(tail -3 "$M/broker.log" 2>/dev/null)"

# A persistent QoS 1 session (-c): the broker keeps its subscription and
# queues messages for it across the broker restart below.
SUB="$WORK/sub.txt"
mosquitto_sub -h 127.0.0.1 -p "$PLAIN" -c -i checker -q 1 -v -t '#' >"$SUB" &
PIDS+=($!)
wait_for "grep -q 'New client connected.*checker' '$M/broker.log' 2>/dev/null" 10 || fail "subscriber did not connect"

received_keys() { # topic prefix → record_keys seen on the per-kind topics
  grep -E "^$1/[^/ ]+/[a-z]+ " "$SUB" | cut -d' ' -f2- | jq -r .record_key | sort -u
}
journal_keys() { # journal, sink name → record_keys up to the sink's cursor
  local c
  c=$(sqlite3 "$1" "SELECT coalesce(max(last_seq),0) FROM sink_cursor WHERE sink='$2'")
  sqlite3 "$1" "SELECT record_key FROM records WHERE published=1 AND seq<=$c" | sort -u
}
cursor_of() { sqlite3 "$1" "SELECT coalesce(max(last_seq),0) FROM sink_cursor WHERE sink='$2'" 2>/dev/null || echo 0; }
last_seq() { sqlite3 "$1" "SELECT coalesce(max(seq),0) FROM records WHERE published=1" 2>/dev/null || echo 0; }
all_arrived() { # journal, sink, prefix
  local missing
  missing=$(comm -23 <(journal_keys "$1" "$2") <(received_keys "$3") | wc -l)
  [ "$missing" -eq 0 ] && [ "$(journal_keys "$1" "$2" | wc -l)" -gt 0 ]
}

# --- plain listener; the broker is restarted in the middle of the run -------
J="$WORK/plain.db"
"$DIABRIDGE" run --journal "$J" --sync normal --source "sim,seed=3,speed=600,history=6h" \
  --sink "mqtt://127.0.0.1:$PLAIN,name=mq,topic=cgmtest,dexpy-topic=cgm,client-id=dia-test" \
  2>"$WORK/plain.log" &
daemon=$!
PIDS+=($daemon)
wait_for "[ \$(cursor_of '$J' mq) -ge 70 ]" 20 || fail "nothing delivered: $(tail -5 "$WORK/plain.log")"
wait_for "grep -q '^cgmtest/status online' '$SUB'" 10 || fail "no retained online on connect"
pass "records published on the plain listener"

kill -TERM "$BROKER"; wait "$BROKER" 2>/dev/null || true
before=$(last_seq "$J")
wait_for "[ \$(last_seq '$J') -gt $((before + 4)) ]" 10 || fail "the source stopped"
start_broker || fail "mosquitto did not start again on its ports"
target=$(($(last_seq "$J") + 4))
wait_for "[ \$(cursor_of '$J' mq) -ge $target ]" 30 || fail "sink did not recover after the broker restart: $(tail -5 "$WORK/plain.log")"
grep -q "connection to the broker.*lost\|cannot connect to the broker" "$WORK/plain.log" \
  || fail "the outage was not reported: $(tail -5 "$WORK/plain.log")"
kill -TERM "$daemon"; wait "$daemon" || fail "daemon exit status $?"
wait_for "all_arrived '$J' mq cgmtest" 15 \
  || fail "missing after broker restart: $(comm -23 <(journal_keys "$J" mq) <(received_keys cgmtest) | head -3)"
pass "broker restarted mid-run: all $(journal_keys "$J" mq | wc -l) delivered records arrived"

# payloads: JSON with record_key and the documented fields; dexpy's st|trend|value
grep -m1 '^cgmtest/SIM3/glucose ' "$SUB" | cut -d' ' -f2- \
  | jq -e '.record_key and (.sgv|type=="number") and .direction and .date and .mgdl == .sgv' >/dev/null \
  || fail "glucose payload: $(grep -m1 '^cgmtest/SIM3/glucose ' "$SUB")"
grep '^cgm ' "$SUB" | cut -d' ' -f2 | grep -Evq '^[0-9]{10}\|[0-9]\|[0-9]+$' \
  && fail "dexpy payload: $(grep -m3 '^cgm ' "$SUB")"
n_dexpy=$(grep -c '^cgm ' "$SUB")
n_gl=$(sqlite3 "$J" "SELECT count(*) FROM records WHERE published=1 AND kind='glucose'")
[ "$n_dexpy" -ge "$n_gl" ] || fail "dexpy topic: $n_dexpy messages for $n_gl readings"
pass "JSON payloads with record_key; dexpy's st|trend|value on its topic"

# retained afterwards: the newest glucose, "offline" after a clean stop, HA config
latest=$(mosquitto_sub -h 127.0.0.1 -p "$PLAIN" -C 1 -W 5 -t cgmtest/SIM3/glucose/latest) \
  || fail "no retained latest glucose"
newest=$(sqlite3 "$J" "SELECT max(t_utc_ms) FROM records WHERE kind='glucose' AND seq<=$(cursor_of "$J" mq)")
[ "$(echo "$latest" | jq .t_utc_ms)" = "$newest" ] || fail "retained latest is not the newest reading"
[ "$(mosquitto_sub -h 127.0.0.1 -p "$PLAIN" -C 1 -W 5 -t cgmtest/status)" = offline ] \
  || fail "availability not offline after stop"
cfg=$(mosquitto_sub -h 127.0.0.1 -p "$PLAIN" -C 1 -W 5 -t homeassistant/sensor/diabridge_SIM3/glucose/config) \
  || fail "no Home Assistant discovery config"
echo "$cfg" | jq -e '.device_class=="blood_glucose_concentration" and .state_class=="measurement"
  and .unit_of_measurement=="mg/dL" and .expire_after>0 and .availability_topic=="cgmtest/status"
  and .state_topic=="cgmtest/SIM3/glucose/latest" and .unique_id and .device.identifiers[0]' \
  >/dev/null || fail "discovery config: $cfg"
pass "retained latest glucose, offline availability and HA discovery config present"

# --- Home Assistant restarts: discovery is announced again --------------------
J2="$WORK/ha.db"
"$DIABRIDGE" run --journal "$J2" --sync normal --source "sim,seed=4,speed=60,history=1h" \
  --sink "mqtt://127.0.0.1:$PLAIN,name=mq,topic=hatest,homeassistant=ha" 2>"$WORK/ha.log" &
d=$!
PIDS+=($d)
wait_for "[ \$(grep -c '^ha/sensor/diabridge_SIM4/glucose/config ' '$SUB') -ge 1 ]" 15 || fail "no HA config"
mosquitto_pub -h 127.0.0.1 -p "$PLAIN" -t ha/status -m online
wait_for "[ \$(grep -c '^ha/sensor/diabridge_SIM4/glucose/config ' '$SUB') -ge 2 ]" 10 \
  || fail "HA config not re-announced after HA's online"
kill -TERM $d; wait $d
pass "HA discovery re-announced when Home Assistant publishes online"

# --- password listener: wrong password → clear error, nothing lost ------------
J3="$WORK/pw.db"
"$DIABRIDGE" run --journal "$J3" --sync normal --source "sim,seed=5,speed=600,history=2h" \
  --sink "mqtt://127.0.0.1:$PW,name=mq,topic=pwtest,username=cgmd,password=wrong-pw" \
  2>"$WORK/pw.log" &
d=$!
PIDS+=($d)
wait_for "'$DIABRIDGE' status --journal '$J3' 2>/dev/null | grep -q 'refused the login'" 15 \
  || fail "status does not explain the refusal: $("$DIABRIDGE" status --journal "$J3")"
st=$("$DIABRIDGE" status --journal "$J3")
echo "$st" | grep -q "backing off" || fail "status: $st"
echo "$st" | grep -q "password=" || fail "status does not say what to check: $st"
! grep -q "wrong-pw" "$WORK/pw.log" <(echo "$st") || fail "the password was printed"
kill -TERM $d; wait $d
[ "$(cursor_of "$J3" mq)" -eq 0 ] || fail "cursor moved without delivery"
grep -q '^pwtest/' "$SUB" && fail "something was published with a wrong password"
echo 's3cret-pw' >"$WORK/pw.txt"
"$DIABRIDGE" run --journal "$J3" --sync normal --source "sim,seed=5,speed=600,history=2h" \
  --sink "mqtt://127.0.0.1:$PW,name=mq,topic=pwtest,username=cgmd,password-file=$WORK/pw.txt" \
  2>>"$WORK/pw.log" &
d=$!
PIDS+=($d)
wait_for "[ \$(cursor_of '$J3' mq) -ge 30 ] && all_arrived '$J3' mq pwtest" 20 \
  || fail "after fixing the password: $(tail -3 "$WORK/pw.log")"
kill -TERM $d; wait $d
wait_for "all_arrived '$J3' mq pwtest" 10 || fail "records missing after the password fix"
pass "wrong password: clear error, nothing lost; fixed → everything arrived"

# --- TLS listener: the test CA works, another CA is refused -------------------
J4="$WORK/tls.db"
"$DIABRIDGE" run --journal "$J4" --sync normal --source "sim,seed=6,speed=600,history=1h" \
  --sink "mqtts://localhost:$TLS,name=good,topic=tlstest,username=cgmd,password-file=$WORK/pw.txt,ca-file=$M/ca.crt,protocol=5" \
  --sink "mqtts://localhost:$TLS,name=bad,topic=tlsbad,username=cgmd,password-file=$WORK/pw.txt,ca-file=$M/other.crt" \
  2>"$WORK/tls.log" &
d=$!
PIDS+=($d)
wait_for "[ \$(cursor_of '$J4' good) -ge 12 ] && all_arrived '$J4' good tlstest" 20 \
  || fail "TLS with the test CA: $(tail -3 "$WORK/tls.log")"
wait_for "'$DIABRIDGE' status --journal '$J4' 2>/dev/null | grep -q 'TLS handshake'" 10 \
  || fail "wrong CA not reported: $("$DIABRIDGE" status --journal "$J4")"
kill -TERM $d; wait $d
[ "$(cursor_of "$J4" bad)" -eq 0 ] || fail "the wrong-CA sink moved its cursor"
grep -q '^tlsbad/' "$SUB" && fail "published through a broker the CA does not vouch for"
pass "TLS (MQTT 5) with the test CA works; a wrong CA is refused with a clear error"

# --- user:password@ in the broker address: used to log in, never shown --------
J5="$WORK/ui.db"
rc=0
"$DIABRIDGE" run --journal "$J5" --check --sink "mqtt://u:SECRETPW@127.0.0.1:99999" \
  >"$WORK/ui-check.log" 2>&1 || rc=$?
[ $rc -eq 78 ] || fail "--check with port 99999: exit $rc, not 78: $(cat "$WORK/ui-check.log")"
"$DIABRIDGE" run --journal "$J5" --sync normal --source "sim,seed=7,speed=600,history=1h" \
  --sink "mqtt://u:SECRETPW@127.0.0.1:1/,name=dead" \
  --sink "mqtt://cgmd:s3cret-pw@127.0.0.1:$PW,name=ui,topic=uitest" 2>"$WORK/ui.log" &
d=$!
PIDS+=($d)
wait_for "[ \$(cursor_of '$J5' ui) -ge 12 ] && all_arrived '$J5' ui uitest" 20 \
  || fail "login with user:password@ in the address: $(tail -3 "$WORK/ui.log")"
wait_for "'$DIABRIDGE' status --journal '$J5' 2>/dev/null | grep -q 'cannot connect'" 15 \
  || fail "the closed port is not reported: $("$DIABRIDGE" status --journal "$J5")"
"$DIABRIDGE" status --journal "$J5" >"$WORK/ui-status.txt"
"$DIABRIDGE" status --journal "$J5" --json >>"$WORK/ui-status.txt"
kill -TERM $d; wait $d
grep -q "u:<redacted>@127.0.0.1:1" "$WORK/ui.log" "$WORK/ui-status.txt" \
  || fail "the address is not shown redacted: $(grep -h dead "$WORK/ui-status.txt")"
! grep -q -e SECRETPW -e s3cret-pw "$WORK/ui.log" "$WORK/ui-status.txt" "$WORK/ui-check.log" \
  || fail "a password from the broker address was printed"
pass "user:password@ in the address logs in; passwords in addresses never printed"
echo "1 passed, 0 failed"
