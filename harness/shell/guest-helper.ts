// The shell code fleetlab defines once per guest session: one round trip per command, length-prefixed output.

/**
 * `__fl_run NONCE TIMEOUT_S 'COMMAND' [s]` runs COMMAND in a subshell (a fork, no exec), stdin from /dev/null,
 * stdout and stderr in files; then prints one header line `NONCE EXIT OUT_BYTES ERR_BYTES FLAG` followed by
 * exactly that many bytes. FLAG is `T` when fleetlab's watchdog killed the command at its timeout (the exit code is
 * then 124, like coreutils timeout) and `-` otherwise, so a command's own exit code 124 is told apart. Output never
 * reaches the channel before its length is known, so nothing a command prints can forge a header, and a background
 * job still holding stdout (`sleep 1000 &`) writes to a file nobody waits on. Once sent, the output files are
 * truncated (a builtin), so large answers do not pile up in the guest's /tmp. A stream longer than 64 KiB goes in
 * 64 KiB chunks (dd), each after a newline from the host (`__fl_send`): QEMU drops a virtconsole's output when the
 * host reads too slowly, so no more than one chunk may be in flight (backdoor-shell.ts, ACK_CHUNK).
 *
 * Timeouts: where the shell's `read` has `-t` (bash, busybox ash, mksh), one watchdog per session (`__fl_dog`)
 * reads arm/disarm requests from a FIFO and counts down with that builtin: no process per command. POSIX sh has no
 * `read -t` (dash, Debian's and Ubuntu's /bin/sh), so there each command gets a killer subshell that waits on a
 * `sleep`; when the command ends first, the main shell marks it done and kills that sleep (it waits for the sleep's
 * pid file, so it cannot miss it), and no process outlives the command. When a countdown runs out the command is
 * marked, stopped and its process tree killed (found through /proc with builtins only). Only a sleep that ran out
 * counts: if a command kills the channel's own timer (`killall sleep`), that command just loses its guest-side
 * timeout (the host's deadline still holds), it is never reported as timed out. A process that detached itself (double fork to init) is not in the tree and is not
 * killed. Under TCG a subshell fork costs ~2.4 ms, `setsid sh -c` ~9.4 ms.
 *
 * Heartbeats: when the host set `__fl_hb` (seconds; a profile with a serial line's silence limit), a subshell prints
 * one NUL byte every `__fl_hb` seconds while a command runs, so a line that stays silent means a hung machine, not a
 * quiet command. It is killed (and waited for) before the answer's header goes out, so no heartbeat lands in an
 * answer; the host reads stray bytes between answers as nothing. It counts with `read -t` on a FIFO nobody writes
 * (no process besides the subshell) where the shell has it, else with a `sleep` that its TERM trap kills (`$!`, set by the fork itself: a TERM between the fork and an
 * assignment would have missed the newest sleep). A fork per
 * command: +1.2 to 2.5 ms a command under TCG (bench/heartbeat.ts); ending it by a walk of /proc cost ~125 ms.
 *
 * Strict commands (`s`): the subshell sets `-eu` and, where the shell has it (`__fl_pf`, probed once by `__fl_check`:
 * bash and busybox ash, not dash), `-o pipefail` before it evals COMMAND, as the NixOS test driver's
 * `set -euo pipefail`; the helper's own code never runs under them.
 *
 * Runs in POSIX sh: dash, busybox ash, bash (NixOS's backdoor shell). `__fl_check` first makes sure the guest has
 * what this needs (head, wc, rm, mkdir, /proc, a writable /tmp; mkfifo where read has -t, sleep where it has not) and
 * answers with the missing ones.
 */
export const GUEST_HELPER = `__fl_tree() {
kill -STOP "$1" 2>/dev/null
for __k in /proc/[0-9]*/stat; do
read -r __q __x <"$__k" 2>/dev/null || continue
case "$__x" in *") "?" $1 "*) __fl_tree "$__q" ;; esac
done
kill -KILL "$1" 2>/dev/null
}
__fl_dog() {
while read -r __op __pg __s __f <&4; do
[ "$__op" = arm ] || continue
read -r -t "$__s" __op <&4 || { : >"$__f.t"; __fl_tree "$__pg"; }
done
}
__fl_run() {
__fl_f=/tmp/.fleetlab/$1
__fl_i=$1
__fl_n=$((__fl_n + 1))
[ $((__fl_n % 64)) -eq 0 ] && rm -f /tmp/.fleetlab/fl*
( if [ "$4" = s ]; then set -eu; if [ "$__fl_pf" = 1 ]; then set -o pipefail; fi; fi; eval "$3" ) </dev/null >"$__fl_f.o" 2>"$__fl_f.e" 4>&- &
__fl_p=$!
__fl_h=
if [ -n "$__fl_hb" ]; then
if [ "$__fl_rt" = 1 ]; then
( while ! read -r -t "$__fl_hb" __z <>/tmp/.fleetlab/hb; do printf '\\000'; done ) </dev/null 2>/dev/null 4>&- &
else
( trap 'kill $! 2>/dev/null; wait $!; exit 0' TERM; while :; do sleep "$__fl_hb" & wait $!; printf '\\000'; done ) </dev/null 2>/dev/null 4>&- &
fi
__fl_h=$!
fi
if [ "$__fl_rt" = 1 ]; then
echo "arm $__fl_p $2 $__fl_f" >&4
wait "$__fl_p"
__fl_r=$?
echo disarm >&4
else
( sleep "$2" & echo $! >"$__fl_f.s"; wait $! && [ ! -e "$__fl_f.d" ] && { : >"$__fl_f.t"; __fl_tree "$__fl_p"; } ) </dev/null >/dev/null 2>&1 4>&- &
__fl_k=$!
wait "$__fl_p"
__fl_r=$?
: >"$__fl_f.d"
until [ -s "$__fl_f.s" ]; do :; done
read -r __z <"$__fl_f.s"
kill "$__z" 2>/dev/null
wait "$__fl_k"
fi
[ -n "$__fl_h" ] && { kill "$__fl_h" 2>/dev/null; wait "$__fl_h" 2>/dev/null; }
__fl_x=-
[ -e "$__fl_f.t" ] && { __fl_r=124; __fl_x=T; }
set -- 0 x 0
if [ -s "$__fl_f.o" ] || [ -s "$__fl_f.e" ]; then set -- $(wc -c "$__fl_f.o" "$__fl_f.e"); fi
printf '%s %s %s %s %s\\n' "$__fl_i" "$__fl_r" "$1" "$3" "$__fl_x"
__fl_send "$__fl_f.o" "$1"
__fl_send "$__fl_f.e" "$3"
: >"$__fl_f.o"
: >"$__fl_f.e"
}
__fl_send() {
[ "$2" -gt 0 ] || return 0
if [ "$2" -le 65536 ]; then head -c "$2" "$1"; return; fi
__fl_c=0
while [ $((__fl_c * 65536)) -lt "$2" ]; do
[ "$__fl_c" -gt 0 ] && read -r __fl_a
dd if="$1" bs=65536 skip="$__fl_c" count=1 2>/dev/null
__fl_c=$((__fl_c + 1))
done
}
__fl_check() {
__fl_m=
for __c in head wc rm mkdir dd; do command -v "$__c" >/dev/null 2>&1 || __fl_m="$__fl_m $__c"; done
[ -r /proc/self/stat ] || __fl_m="$__fl_m /proc(mounted)"
__fl_rt=0
__fl_pf=0
(set -o pipefail) 2>/dev/null && __fl_pf=1
if (printf 'x\\n' | { read -r -t 5 __y && [ "$__y" = x ]; }) 2>/dev/null; then
__fl_rt=1
command -v mkfifo >/dev/null 2>&1 || __fl_m="$__fl_m mkfifo"
else
command -v sleep >/dev/null 2>&1 || __fl_m="$__fl_m sleep(this shell's read has no -t)"
fi
if [ -z "$__fl_m" ]; then
mkdir -p /tmp/.fleetlab || __fl_m=" a writable /tmp"
fi
if [ -n "$__fl_m" ]; then
__fl_m="missing:$__fl_m"
printf '%s 3 %s 0 -\\n%s' "$1" "\${#__fl_m}" "$__fl_m"
return
fi
[ -f /tmp/.fleetlab/dog.pid ] && kill "$(cat /tmp/.fleetlab/dog.pid)" 2>/dev/null
rm -f /tmp/.fleetlab/dog /tmp/.fleetlab/fl*
if [ "$__fl_rt" = 1 ]; then
mkfifo /tmp/.fleetlab/dog
[ -p /tmp/.fleetlab/hb ] || mkfifo /tmp/.fleetlab/hb
exec 4<>/tmp/.fleetlab/dog
__fl_dog </dev/null >/dev/null 2>&1 &
echo $! >/tmp/.fleetlab/dog.pid
fi
__fl_run "$1" 30 'echo "$__fl_rt"'
}
`;

/** Quotes a string for POSIX sh: single quotes, with embedded ones as '\\''. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
