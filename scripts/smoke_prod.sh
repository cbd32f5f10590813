#!/usr/bin/env bash
# shellcheck disable=SC2317 # the steps and headers() run indirectly (run_step "$3", <(headers))
# The release checklist of docs/RUNBOOK.md as one command, against any deployment:
#
#   BASE_URL="https://your-api" EMAIL="operator@example.com" PASSWORD="***" \
#   ALLOW_BINANCE_TEST_ERROR=true REQUIRE_IBKR_SECRET=false scripts/smoke_prod.sh
#
# Environment:
#   BASE_URL                  the API's base URL (http:// or https://), required
#   EMAIL, PASSWORD           the operator's login; required unless TOKEN is set
#   TOKEN                     an access token already issued: no login (checked with GET /users/me)
#   OTP                       the current 2FA code, sent with the login
#   REQUIRE_IBKR_SECRET       true: the IBKR secret must be configured (default false: reported only)
#   ALLOW_BINANCE_TEST_ERROR  true: a Binance test order the exchange answers with an error
#                             (e.g. a testnet key it rejects) passes as "allowed error" (default false)
#   BINANCE_API_KEY, BINANCE_API_SECRET
#                             when set (both), stored first with PUT /users/exchange-secrets/BINANCE
#   PROJECTION_WAIT_SECONDS   how long the secrets and audit steps wait for the server's read
#                             models (projections, normally a fraction of a second behind) to
#                             show this run's changes (default 3)
#
# Steps, one line each (name, OK/FAIL/SKIP, milliseconds, reason), then a summary line:
#   health   GET /healthz answers 200 with "status":"ok"
#   login    POST /auth/login (form; otp when OTP is set), or TOKEN checked with GET /users/me
#   secrets  GET /users/exchange-secrets: BINANCE configured; IBKR configured when required
#            (a 503 while the status catches up with the stored key is asked again)
#   dry-run  POST /ops/execution/prepare (0.01 BTCUSDT): a decision, and it is "accepted"
#   binance  POST /ops/execution/binance/test-order (0.01 BTCUSDT): "status":"success"
#   ibkr     POST /ops/execution/ibkr/test-order (1 AAPL): "status":"success"; when the IBKR
#            secret is missing and not required, an error answer is an allowed error
#   audit    GET /ops/audit/me?limit=100 shows this run's events: auth.login.success (when it
#            logged in), execution.prepare and the test orders' .success or .error events, all
#            recorded at or after the Date of the health answer (the server's clock, so the
#            local clock's skew does not matter), execution events matched by execution_id
#
# Exit codes (the first failing step decides):
#   0  every required step passed
#   2  usage or configuration error (BASE_URL, EMAIL/PASSWORD missing, a bad true/false value,
#      only one of BINANCE_API_KEY/BINANCE_API_SECRET, PROJECTION_WAIT_SECONDS not a whole
#      number, curl or python3 not installed)
#   3  health    4  login    5  secrets (also REQUIRE_IBKR_SECRET=true with IBKR missing)
#   6  dry run   7  Binance test order   8  IBKR test order   9  audit
#
# Secrets: the password, the token and the Binance credentials never reach the output, a
# command line (visible in ps) or a trace: request bodies go to curl on stdin and the
# Authorization header through a file descriptor; error reasons are the API's error code and
# message only, with any of those values masked. Under GitHub Actions (GITHUB_ACTIONS set) the
# token is registered with ::add-mask:: before anything else is printed.
# Prepare and the test orders carry an Idempotency-Key (a fresh uuid per run and request);
# a request that got no answer (connection refused or dropped) is sent once more with the
# same key, so the retry can never send a second test order. Every curl has a 5 s connect
# and 20 s total timeout.
set +x # a trace would print the password and the token
set -uo pipefail

usage() { sed -n '3,/^set +x/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

die_usage() {
	echo "smoke_prod.sh: $*" >&2
	echo "smoke_prod.sh: see scripts/smoke_prod.sh -h" >&2
	exit 2
}

case "${1:-}" in
-h | --help)
	usage
	exit 0
	;;
"") ;;
*) die_usage "no arguments are taken (configuration is the environment)" ;;
esac

# JSON handling and form encoding. Secrets reach it through its environment, never argv.
read -r -d '' PY <<'EOF'
# Python starts once per step, so modules only some commands need are imported where they
# are used: on a busy machine every import shows in the step's time.
import json, os, re, sys, time

def body():
    try:
        return json.loads(sys.stdin.buffer.read().decode("utf-8"))
    except Exception:
        return None

def text(v, n=200):
    # one printable line: a server's text must not start a new line (a forged
    # workflow command) or flood the log
    s = re.sub(r"[\x00-\x1f\x7f]+", " ", str(v)).strip()
    return s[:n] + ("..." if len(s) > n else "")

def field(d, *path):
    for p in path:
        if not isinstance(d, dict):
            return None
        d = d.get(p)
    return d

def out(*cols):
    # fields apart by the unit separator: with a tab, bash's read would merge empty fields
    print("\x1f".join("" if c is None else text(c) for c in cols))

def epoch(at):
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", str(at))
    if not m:
        return None
    import datetime
    t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")
    tz = m.group(3)
    off = 0 if tz == "Z" else (1 if tz[0] == "+" else -1) * (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60)
    return t.replace(tzinfo=datetime.timezone.utc).timestamp() - off + float(m.group(2) or 0)

cmd, args = sys.argv[1], sys.argv[2:]
if cmd == "form":
    import urllib.parse
    f = {"username": os.environ.get("EMAIL", ""), "password": os.environ.get("PASSWORD", "")}
    if os.environ.get("OTP"):
        f["otp"] = os.environ["OTP"]
    sys.stdout.write(urllib.parse.urlencode(f))
elif cmd == "binance-secret":
    sys.stdout.write(json.dumps({"api_key": os.environ["BINANCE_API_KEY"], "api_secret": os.environ["BINANCE_API_SECRET"]}))
elif cmd == "init":
    # the interpreter itself (so that later calls skip a version manager's shim) and the
    # run's idempotency keys
    import uuid
    print(sys.executable, *(uuid.uuid4() for _ in range(int(args[0]))))
elif cmd == "ms":
    print(int(time.time() * 1000))
elif cmd == "error":
    d = body()
    code, msg = field(d, "error", "code"), field(d, "error", "message")
    if isinstance(code, str):
        s = code + (": " + msg if isinstance(msg, str) and msg else "")
        xc = field(d, "error", "exchange_code")
        if xc is not None:
            s += " (exchange code %s)" % xc
        print(text(s))
elif cmd == "health":
    # the run's start on the server's clock: the Date of its answer (whole seconds, rounded
    # down); the local clock, less 5 s for its skew, when there is none
    import email.utils
    date = ""
    try:
        for line in open(args[0], encoding="latin-1"):
            k, _, v = line.partition(":")
            if k.strip().lower() == "date":
                date = v.strip()
        start = int(email.utils.parsedate_to_datetime(date).timestamp())
    except Exception:
        start = int(time.time()) - 5
    d = body()
    out(start, field(d, "status"), field(d, "database"), field(d, "version"))
elif cmd == "token":
    t = field(body(), "access_token")
    # a token is printable ASCII without spaces; anything else would corrupt the header file
    if isinstance(t, str) and re.fullmatch(r"[A-Za-z0-9._~+/=-]+", t):
        print(t)
    else:
        sys.exit(1)
elif cmd == "me":
    d = body()
    out(field(d, "email"), field(d, "role"), field(d, "risk_profile"))
elif cmd == "secrets":
    st = {}
    for s in field(body(), "secrets") or []:
        if isinstance(s, dict):
            st[s.get("exchange")] = s.get("status")
    out(st.get("BINANCE") or "absent", st.get("IBKR") or "absent")
elif cmd == "prepare":
    d = body()
    failed = [c.get("code") or c.get("name") for c in (field(d, "checks") or [])
              if isinstance(c, dict) and c.get("passed") is False]
    out(field(d, "decision"), field(d, "execution_id"), field(d, "risk_profile"),
        ",".join(str(c) for c in failed), field(d, "shadow", "profile"), field(d, "shadow", "decision"))
elif cmd == "testorder":
    d = body()
    out(field(d, "status"), field(d, "execution_id"), field(d, "mode"))
elif cmd == "audit":
    # args: START then TYPE[|TYPE...]=[EXECUTION_ID] per expected event; prints what is missing
    start, missing = float(args[0]), []
    events = [e for e in (field(body(), "events") or []) if isinstance(e, dict)]
    for want in args[1:]:
        types, _, xid = want.partition("=")
        types = types.split("|")
        def match(e):
            at = epoch(e.get("at"))
            if e.get("type") not in types or at is None or at < start:
                return False
            got = field(e, "data", "execution_id")
            return not xid or got is None or got == xid
        if not any(match(e) for e in events):
            missing.append(" or ".join(types))
    print(", ".join(missing))
    sys.exit(1 if missing else 0)
else:
    sys.exit("unknown helper " + cmd)
EOF

bool() { # NAME DEFAULT: prints true or false, or stops with a usage error
	local v=${!1:-$2}
	case $v in
	true | false) echo "$v" ;;
	*) die_usage "$1 must be true or false, got '$v'" ;;
	esac
}

for tool in curl python3; do
	command -v "$tool" >/dev/null || die_usage "$tool is required and not installed"
done
[ -n "${BASE_URL:-}" ] || die_usage "BASE_URL is not set (e.g. BASE_URL=https://api.example.com)"
case $BASE_URL in
http://* | https://*) ;;
*) die_usage "BASE_URL must start with http:// or https://" ;;
esac
base=${BASE_URL%/}
if [ -z "${TOKEN:-}" ]; then
	[ -n "${EMAIL:-}" ] || die_usage "EMAIL is not set (or set TOKEN to skip the login)"
	[ -n "${PASSWORD:-}" ] || die_usage "PASSWORD is not set (or set TOKEN to skip the login)"
fi
require_ibkr=$(bool REQUIRE_IBKR_SECRET false) || exit 2
allow_binance_error=$(bool ALLOW_BINANCE_TEST_ERROR false) || exit 2
projection_wait=${PROJECTION_WAIT_SECONDS:-3}
[[ $projection_wait =~ ^[0-9]{1,4}$ ]] || die_usage "PROJECTION_WAIT_SECONDS must be a whole number of seconds, got '$projection_wait'"
projection_wait=$((10#$projection_wait))
if { [ -n "${BINANCE_API_KEY:-}" ] && [ -z "${BINANCE_API_SECRET:-}" ]; } ||
	{ [ -z "${BINANCE_API_KEY:-}" ] && [ -n "${BINANCE_API_SECRET:-}" ]; }; then
	die_usage "set both BINANCE_API_KEY and BINANCE_API_SECRET, or neither"
fi

tmp=$(mktemp -d) || die_usage "cannot create a temporary directory"
trap 'rm -rf "$tmp"' EXIT

# One interpreter start costs tens of milliseconds (more through a pyenv or asdf shim), so
# the first call also names the interpreter for the others and makes the run's
# Idempotency-Keys (one per request: prepare, Binance and IBKR test orders).
python=python3
py() { "$python" -I -S -c "$PY" "$@"; }
read -r python key_prepare key_binance key_ibkr < <(py init 3)
[ -n "$key_ibkr" ] || die_usage "python3 does not run"

now_ms() { # sets NOW_MS
	if [ -n "${EPOCHREALTIME:-}" ]; then
		local t=${EPOCHREALTIME//[!0-9]/}
		NOW_MS=$((10#$t / 1000))
	else
		NOW_MS=$(py ms)
	fi
}

access_token=${TOKEN:-}

# redact LINE: LINE with every secret value masked (a server that echoes one must not
# make us print it)
redact() {
	local s=$1 v
	for v in "${PASSWORD:-}" "${TOKEN:-}" "$access_token" "${BINANCE_API_KEY:-}" "${BINANCE_API_SECRET:-}"; do
		# (a value under 6 characters is too common a substring to mask without garbling
		# the line; this script never prints one itself)
		[ "${#v}" -ge 6 ] && s=${s//"$v"/"[masked]"}
	done
	printf '%s\n' "$s"
}

headers() { # extra request headers, read by curl from a file descriptor
	printf 'Accept: application/json\n'
	[ -n "$access_token" ] && printf 'Authorization: Bearer %s\n' "$access_token"
	[ -n "$req_type" ] && printf 'Content-Type: %s\n' "$req_type"
	[ -n "$req_key" ] && printf 'Idempotency-Key: %s\n' "$req_key"
	return 0
}

# call METHOD PATH [CONTENT_TYPE [BODY [IDEMPOTENCY_KEY]]]: sets status (HTTP status, 000 when
# no answer), resp (the body) and reason (why it failed, when it did). Sent once more, with
# the same idempotency key, when the server could not be reached or dropped the connection.
call() {
	local method=$1 path=$2 req_type=${3:-} req_body=${4:-} req_key=${5:-} out rc attempt
	for attempt in 1 2; do
		out=$(printf '%s' "$req_body" | curl -s --connect-timeout 5 --max-time 20 \
			-A tradeops-smoke -X "$method" -H @<(headers) ${req_type:+--data-binary @-} \
			-D "$tmp/headers" -w '\n%{http_code}' "$base$path")
		rc=$?
		case $rc in
		7 | 52 | 56) [ "$attempt" = 1 ] && sleep 1 && continue ;;
		esac
		break
	done
	status=${out##*$'\n'}
	resp=${out%$'\n'*}
	if [ "$rc" != 0 ]; then
		status=000
		case $rc in
		6) reason="no answer: cannot resolve the host" ;;
		7) reason="no answer: connection refused" ;;
		28) reason="no answer: timed out" ;;
		35 | 60) reason="no answer: TLS failure (curl $rc)" ;;
		52 | 56) reason="no answer: connection dropped (curl $rc)" ;;
		*) reason="no answer: curl error $rc" ;;
		esac
		return 1
	fi
	reason="HTTP $status"
	[ "$status" = 200 ] && return 0
	explain
	return 1
}

# explain: adds the API's error code and message in resp to reason
explain() {
	local detail
	detail=$(printf '%s' "$resp" | py error)
	reason+=${detail:+ $detail}
}

# Step bookkeeping: each step function sets step_status (OK by default) and step_msg.
exit_code=0
failed=()
ok_count=0 skip_count=0
fail() {
	step_status=FAIL
	step_msg=$1
}
skip() {
	step_status=SKIP
	step_msg=$1
}
run_step() { # NAME EXIT_CODE FUNCTION
	local name=$1 code=$2 t0 line
	now_ms
	t0=$NOW_MS
	step_status=OK step_msg=
	"$3"
	now_ms
	printf -v line '%-8s %-4s %6dms' "$name" "$step_status" $((NOW_MS - t0))
	redact "$line${step_msg:+  $step_msg}"
	case $step_status in
	OK) ok_count=$((ok_count + 1)) ;;
	SKIP) skip_count=$((skip_count + 1)) ;;
	FAIL)
		failed+=("$name")
		[ "$exit_code" = 0 ] && exit_code=$code
		;;
	esac
}

mask_token() {
	[ -n "${GITHUB_ACTIONS:-}" ] && printf '::add-mask::%s\n' "$access_token"
	return 0
}

healthy=false
run_start=
step_health() {
	call GET /healthz
	local ok=$?
	if [ "$status" = 000 ]; then
		fail "$reason"
		return
	fi
	local hs db version
	IFS=$'\x1f' read -r run_start hs db version < <(printf '%s' "$resp" | py health "$tmp/headers")
	if [ "$ok" != 0 ] || [ "$hs" != ok ]; then
		fail "HTTP $status, status ${hs:-missing}, database ${db:-?}"
		return
	fi
	healthy=true
	step_msg="version ${version:-?}"
}

logged_in=false
step_login() {
	$healthy || {
		skip "server not healthy"
		return
	}
	if [ -n "${TOKEN:-}" ]; then
		if [[ ! $TOKEN =~ ^[A-Za-z0-9._~+/=-]+$ ]]; then
			access_token=
			fail "TOKEN is not a token (unexpected characters)"
			return
		fi
		mask_token
		if ! call GET /users/me; then
			access_token=
			fail "TOKEN rejected: $reason"
			return
		fi
		local email role profile
		IFS=$'\x1f' read -r email role profile < <(printf '%s' "$resp" | py me)
		skip "TOKEN given, no login ($email, $role, risk profile $profile)"
		return
	fi
	local form
	form=$(py form)
	if ! call POST /auth/login application/x-www-form-urlencoded "$form"; then
		case $reason in
		*otp_required*) [ -z "${OTP:-}" ] && reason+=" (set OTP to the current 2FA code)" ;;
		esac
		fail "$reason"
		return
	fi
	if ! access_token=$(printf '%s' "$resp" | py token); then
		access_token=
		fail "HTTP 200 without a usable access_token"
		return
	fi
	mask_token
	logged_in=true
	step_msg=${EMAIL}${OTP:+ (with 2FA code)}
}

ibkr_secret=unknown
step_secrets() {
	[ -n "$access_token" ] || {
		skip "no token"
		return
	}
	local stored=
	if [ -n "${BINANCE_API_KEY:-}" ]; then
		if ! call PUT /users/exchange-secrets/BINANCE application/json "$(py binance-secret)"; then
			fail "storing the BINANCE secret: $reason"
			return
		fi
		stored=" (stored now)"
	fi
	# The status is a projection. The server waits briefly for it to show a change, then
	# answers 503 (Retry-After: 1), so a 503 is asked again until PROJECTION_WAIT_SECONDS
	# have passed.
	local deadline
	now_ms
	deadline=$((NOW_MS + projection_wait * 1000))
	while ! call GET /users/exchange-secrets; do
		now_ms
		if [ "$status" != 503 ] || [ "$NOW_MS" -ge "$deadline" ]; then
			fail "$reason"
			return
		fi
		sleep 1
	done
	local binance
	IFS=$'\x1f' read -r binance ibkr_secret < <(printf '%s' "$resp" | py secrets)
	if [ "$binance" != configured ]; then
		fail "BINANCE secret is $binance (store it, or set BINANCE_API_KEY and BINANCE_API_SECRET)"
		return
	fi
	if [ "$ibkr_secret" != configured ] && [ "$require_ibkr" = true ]; then
		fail "IBKR secret is $ibkr_secret (REQUIRE_IBKR_SECRET=true)"
		return
	fi
	local ibkr_note="IBKR $ibkr_secret"
	[ "$ibkr_secret" != configured ] && ibkr_note+=" (not required)"
	step_msg="BINANCE configured$stored, $ibkr_note"
}

expected=() # audit expectations: TYPE[|TYPE]=EXECUTION_ID

step_prepare() {
	[ -n "$access_token" ] || {
		skip "no token"
		return
	}
	call POST /ops/execution/prepare application/json \
		'{"exchange":"BINANCE","symbol":"BTCUSDT","side":"BUY","qty":0.01}' "$key_prepare"
	if [ "$status" != 200 ]; then
		fail "$reason"
		return
	fi
	local decision xid profile checks shadow_profile shadow
	IFS=$'\x1f' read -r decision xid profile checks shadow_profile shadow < <(printf '%s' "$resp" | py prepare)
	expected+=("execution.prepare=$xid")
	case $decision in
	accepted) step_msg="accepted under ${profile:-?} (shadow ${shadow_profile:-?}: ${shadow:-?})" ;;
	rejected) fail "rejected under ${profile:-?}: ${checks:-no failed check listed}" ;;
	*) fail "HTTP 200 without a decision" ;;
	esac
}

# test_order NAME PATH BODY KEY ALLOW WHY_ALLOWED: NAME is binance or ibkr, as in the event
# types. ALLOW: no; exchange (the exchange's error, "status":"error", passes as an allowed
# error); refusal (that, or any 4xx refusal but an authentication one: the IBKR test order of
# a user without an IBKR secret).
test_order() {
	[ -n "$access_token" ] || {
		skip "no token"
		return
	}
	call POST "$2" application/json "$3" "$4"
	if [ "$status" = 000 ]; then
		fail "$reason"
		return
	fi
	local outcome xid mode
	IFS=$'\x1f' read -r outcome xid mode < <(printf '%s' "$resp" | py testorder)
	case $outcome in
	success | error) expected+=("execution.$1.test_order.$outcome=$xid") ;;
	esac
	if [ "$status" = 200 ]; then
		if [ "$outcome" = success ]; then
			step_msg="success, mode ${mode:-?}"
			return
		fi
		explain
		[ "$outcome" = error ] || reason+=" without \"status\":\"success\""
	fi
	local allowed=false
	case $5/$outcome/$status in
	exchange/error/* | refusal/error/*) allowed=true ;;
	refusal/*/401 | refusal/*/403) ;;
	refusal/*/4[0-9][0-9]) allowed=true ;;
	esac
	if $allowed; then
		step_msg="allowed error: ${reason#HTTP * }$6"
		return
	fi
	fail "$reason"
	[ "$outcome" = error ] && [ "$1" = binance ] && step_msg+=" (ALLOW_BINANCE_TEST_ERROR=true accepts it)"
}

step_binance() {
	local allow=no
	[ "$allow_binance_error" = true ] && allow=exchange
	test_order binance /ops/execution/binance/test-order \
		'{"symbol":"BTCUSDT","side":"BUY","qty":0.01}' "$key_binance" "$allow" ""
}

step_ibkr() {
	local allow=no
	[ "$ibkr_secret" != configured ] && [ "$require_ibkr" = false ] && allow=refusal
	test_order ibkr /ops/execution/ibkr/test-order \
		'{"symbol":"AAPL","side":"BUY","qty":1}' "$key_ibkr" "$allow" " (IBKR secret $ibkr_secret, not required)"
}

step_audit() {
	[ -n "$access_token" ] || {
		skip "no token"
		return
	}
	local want=()
	$logged_in && want+=("auth.login.success=")
	want+=(${expected[@]+"${expected[@]}"}) # (bash before 4.4: an empty array is "unbound")
	if [ "${#want[@]}" = 0 ]; then
		skip "no event to look for"
		return
	fi
	# The audit log is a projection: a new event normally shows within a fraction of a
	# second. Polled with a growing pause (at most 1 s) until PROJECTION_WAIT_SECONDS have
	# passed.
	local missing found delay=0.1 deadline
	now_ms
	deadline=$((NOW_MS + projection_wait * 1000))
	while :; do
		if ! call GET "/ops/audit/me?limit=100"; then
			fail "$reason"
			return
		fi
		missing=$(printf '%s' "$resp" | py audit "$run_start" "${want[@]}")
		found=$?
		now_ms
		if [ "$found" = 0 ] || [ "$NOW_MS" -ge "$deadline" ]; then
			break
		fi
		sleep "$delay"
		case $delay in
		0.1) delay=0.2 ;;
		0.2) delay=0.4 ;;
		0.4) delay=0.8 ;;
		*) delay=1 ;;
		esac
	done
	if [ "$found" != 0 ]; then
		fail "missing since the run began: ${missing:-(the answer could not be read)}"
		return
	fi
	step_msg="${#want[@]} events of this run recorded"
}

now_ms
started=$NOW_MS
run_step health 3 step_health
run_step login 4 step_login
run_step secrets 5 step_secrets
run_step dry-run 6 step_prepare
run_step binance 7 step_binance
run_step ibkr 8 step_ibkr
run_step audit 9 step_audit
now_ms
host=${base#*://}
host=${host%%/*}
host=${host##*@}
if [ "$exit_code" = 0 ]; then
	printf 'PASS  %d OK, %d skipped in %dms against %s\n' "$ok_count" "$skip_count" $((NOW_MS - started)) "$host"
else
	printf -v names '%s, ' "${failed[@]}"
	printf 'FAIL  exit %d: %s failed; %d OK, %d skipped in %dms against %s\n' "$exit_code" \
		"${names%, }" "$ok_count" "$skip_count" $((NOW_MS - started)) "$host"
fi
exit "$exit_code"
