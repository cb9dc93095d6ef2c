#!/usr/bin/env bash
# Sink mqtt against a real mosquitto (specs/smartpix-and-sinks.md §5.1), started
# here on free loopback ports with a plain, a password, a TLS and an anonymous
# TLS listener; the test CA and server certificate are made with openssl on
# the spot.
# Checks: what the sink publishes arrives (a persistent mosquitto_sub session
# sees every record_key the journal says was delivered), the broker restarted
# mid-run loses nothing, a wrong password is a clear error and loses nothing,
# TLS works with the right CA and is refused with a wrong one, mqtts:// without
# ca-file= trusts the system's CAs only (SSL_CERT_FILE stands in for them) and
# so does dexpy.json's "MQTT_SSL": true, the retained latest glucose,
# availability and Home Assistant discovery configs are present afterwards and
# announced again after a reconnect, a broker refusing "for now" is retried
# soon (fake brokers made with socat), and a port that does not answer MQTT
# is explained.
source "$(dirname "$0")/lib.bash"

for tool in mosquitto mosquitto_sub mosquitto_passwd openssl sqlite3 jq socat; do
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
listener $TLSA 127.0.0.1
allow_anonymous true
cafile $M/ca.crt
certfile $M/server.crt
keyfile $M/server.key
CONF
}
BROKER=
start_broker() { # → 0 when all four listeners answer
  mosquitto -c "$M/mosquitto.conf" &
  BROKER=$!
  PIDS+=($BROKER)
  wait_for "port_open \$PLAIN && port_open \$PW && port_open \$TLS && port_open \$TLSA" 10 && return 0
  kill "$BROKER" 2>/dev/null || true
  return 1
}
# A port picked free may be taken by someone else before mosquitto binds it:
# then pick new ones (the later restart reuses the ports that worked).
started=0
for attempt in 1 2 3; do
  pick_port PLAIN; pick_port PW; pick_port TLS; pick_port TLSA
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
# speed=1: after the hour of history no reading is due for minutes, so the
# sink sits idle and the broker restart below is seen only by the network
# thread's reconnect, not by a failing send (which would start a new instance).
J2="$WORK/ha.db"
"$DIABRIDGE" run --journal "$J2" --sync normal --source "sim,seed=4,speed=1,history=1h" \
  --sink "mqtt://127.0.0.1:$PLAIN,name=mq,topic=hatest,homeassistant=ha" 2>"$WORK/ha.log" &
d=$!
PIDS+=($d)
ha_configs() { grep -c '^ha/sensor/diabridge_SIM4/glucose/config ' "$SUB" || true; }
wait_for "[ \$(ha_configs) -ge 1 ] && sink_caught_up '$J2' mq" 15 || fail "no HA config"
mosquitto_pub -h 127.0.0.1 -p "$PLAIN" -t ha/status -m online
wait_for "[ \$(ha_configs) -ge 2 ]" 10 || fail "HA config not re-announced after HA's online"
pass "HA discovery re-announced when Home Assistant publishes online"

# a broker that comes back without the retained config gets it again: the
# config is deleted (empty retained message) and the broker restarted
retained_config() {
  mosquitto_sub -h 127.0.0.1 -p "$PLAIN" -C 1 -W 2 -t ha/sensor/diabridge_SIM4/glucose/config 2>/dev/null || true
}
mosquitto_pub -h 127.0.0.1 -p "$PLAIN" -r -n -t ha/sensor/diabridge_SIM4/glucose/config
[ -z "$(retained_config)" ] || fail "the retained config could not be deleted"
online_before=$(grep -c '^hatest/status online' "$SUB" || true)
kill -TERM "$BROKER"; wait "$BROKER" 2>/dev/null || true
start_broker || fail "mosquitto did not start again on its ports"
wait_for "[ \$(grep -c '^hatest/status online' '$SUB') -gt $online_before ]" 20 \
  || fail "the sink did not reconnect: $(tail -3 "$WORK/ha.log")"
wait_for '[ -n "$(retained_config)" ]' 15 \
  || fail "HA config not announced again after the reconnect: $(tail -3 "$WORK/ha.log")"
kill -TERM $d; wait $d
pass "HA discovery re-announced after reconnecting to a restarted broker"

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

# --- mqtts:// without ca-file=: the system's CA store, verification stays on --
# OpenSSL's default verify paths honour SSL_CERT_FILE, so pointing it at the
# test CA stands for a broker whose CA the system trusts; without it the test
# CA is trusted by nobody and the connection must be refused.
J6="$WORK/os.db"
SSL_CERT_FILE="$M/ca.crt" "$DIABRIDGE" run --journal "$J6" --sync normal \
  --source "sim,seed=10,speed=600,history=1h" \
  --sink "mqtts://localhost:$TLS,name=os,topic=ostest,username=cgmd,password-file=$WORK/pw.txt" \
  2>"$WORK/os.log" &
d=$!
PIDS+=($d)
wait_for "[ \$(cursor_of '$J6' os) -ge 12 ] && all_arrived '$J6' os ostest" 20 \
  || fail "mqtts:// without ca-file=, CA in the system store: $(tail -3 "$WORK/os.log")"
kill -TERM $d; wait $d
J6u="$WORK/os-untrusted.db"
env -u SSL_CERT_FILE -u SSL_CERT_DIR "$DIABRIDGE" run --journal "$J6u" --sync normal \
  --source "sim,seed=11,speed=600,history=1h" \
  --sink "mqtts://localhost:$TLS,name=os,topic=osbad,username=cgmd,password-file=$WORK/pw.txt" \
  --sink "mqtts://localhost:$PLAIN,name=plainport,topic=osplain" \
  2>"$WORK/os-untrusted.log" &
d=$!
PIDS+=($d)
wait_for "'$DIABRIDGE' status --journal '$J6u' 2>/dev/null | grep -q 'certificate verify failed.*no CA this system trusts signed'" 15 \
  || fail "an untrusted broker certificate is not explained: $("$DIABRIDGE" status --journal "$J6u")"
wait_for "'$DIABRIDGE' status --journal '$J6u' 2>/dev/null | grep -q 'plain port needs mqtt://'" 15 \
  || fail "mqtts:// to a plain port is not explained: $("$DIABRIDGE" status --journal "$J6u")"
kill -TERM $d; wait $d
[ "$(cursor_of "$J6u" os)" -eq 0 ] || fail "published through a broker nobody vouches for"
grep -q '^osbad/' "$SUB" && fail "a message reached the broker without a trusted certificate"
pass "mqtts:// without ca-file= trusts the system's CAs (SSL_CERT_FILE), and only them"

# dexpy.json's "MQTT_SSL": true becomes mqtts:// without a CA file: the same path
cat >"$WORK/dexpy.json" <<JSON
{
  "MQTT_SERVER": "localhost",
  "MQTT_PORT": $TLSA,
  "MQTT_SSL": true,
  "MQTT_CLIENTID": "dexpy-tls-test",
  "MQTT_TOPIC": "cgmtls"
}
JSON
J7="$WORK/dexpy-tls.db"
SSL_CERT_FILE="$M/ca.crt" "$DIABRIDGE" run -c "$WORK/dexpy.json" --journal "$J7" --sync normal \
  --source "sim,seed=12,speed=600,history=1h" 2>"$WORK/dexpy-tls.log" &
d=$!
PIDS+=($d)
dexpy_sink() { sqlite3 "$J7" "SELECT sink FROM sink_cursor LIMIT 1" 2>/dev/null || true; }
wait_for "[ -n \"\$(dexpy_sink)\" ] && [ \$(cursor_of '$J7' \"\$(dexpy_sink)\") -ge 12 ]" 20 \
  || fail "dexpy.json with MQTT_SSL true: $(tail -3 "$WORK/dexpy-tls.log")"
kill -TERM $d; wait $d
n_tls=$(grep -c '^cgmtls ' "$SUB" || true)
[ "$n_tls" -ge 12 ] || fail "dexpy.json over TLS: $n_tls dexpy messages"
pass "dexpy.json \"MQTT_SSL\": true connects over TLS and publishes"

# --- a broker that is busy for now is retried soon; one that does not answer is explained
# Fake brokers (socat): one answers every CONNECT with MQTT 3.1.1's "server
# unavailable" (CONNACK return code 3), one with MQTT 5's "server busy"
# (reason code 0x89), and one accepts the connection and never answers.
fake_broker() { # NAME PORT CONNACK-BYTES(octal escapes; empty: silence) SECONDS-OPEN
  cat >"$WORK/$1.sh" <<SH
#!/bin/sh
echo connect >>"$WORK/$1.count"
[ -n '$3' ] && printf '$3'
sleep $4
SH
  chmod +x "$WORK/$1.sh"
  socat "TCP-LISTEN:$2,bind=127.0.0.1,reuseaddr,fork" "EXEC:$WORK/$1.sh" 2>/dev/null &
  PIDS+=($!)
}
connects() { [ -s "$WORK/$1.count" ] && wc -l <"$WORK/$1.count" || echo 0; }
pick_port BUSY3; pick_port BUSY5; pick_port MUTE
fake_broker busy3 "$BUSY3" '\040\002\000\003' 3
fake_broker busy5 "$BUSY5" '\040\003\000\211\000' 3
fake_broker mute "$MUTE" '' 30
wait_for "port_open $BUSY3 && port_open $BUSY5 && port_open $MUTE" 10 || fail "socat did not listen"
rm -f "$WORK"/busy3.count "$WORK"/busy5.count "$WORK"/mute.count # forget the probes just made
J8="$WORK/busy.db"
"$DIABRIDGE" run --journal "$J8" --sync normal --source "sim,seed=13,speed=600,history=1h" \
  --sink "mqtt://127.0.0.1:$BUSY3,name=busy3" --sink "mqtt://127.0.0.1:$BUSY5,name=busy5,protocol=5" \
  --sink "mqtt://127.0.0.1:$MUTE,name=mute" 2>"$WORK/busy.log" &
d=$!
PIDS+=($d)
# a refusal for now is retried with the short back-off (1 s, 2 s, …), not 30 min
wait_for "[ \$(connects busy3) -ge 3 ] && [ \$(connects busy5) -ge 3 ]" 30 \
  || fail "a busy broker is not retried soon: $(connects busy3) and $(connects busy5) connects; $(grep -m2 busy "$WORK/busy.log")"
grep -q "busy3.*cannot take the connection for now.*retrying in" "$WORK/busy.log" \
  || fail "server unavailable not explained: $(grep -m2 busy3 "$WORK/busy.log")"
grep -q "busy5.*cannot take the connection for now (Server busy).*retrying in" "$WORK/busy.log" \
  || fail "server busy not explained: $(grep -m2 busy5 "$WORK/busy.log")"
wait_for "'$DIABRIDGE' status --journal '$J8' 2>/dev/null | grep -q 'did not answer the MQTT connect'" 25 \
  || fail "a silent port is not reported: $("$DIABRIDGE" status --journal "$J8")"
"$DIABRIDGE" status --journal "$J8" | grep -q "check that this port is the broker's MQTT port" \
  || fail "a silent port gives no advice: $("$DIABRIDGE" status --journal "$J8")"
kill -TERM $d; wait $d
pass "a broker refusing for now is retried within seconds; a silent port is explained"

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
