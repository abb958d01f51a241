//! The help texts: `walkv --help` and `walkv help COMMAND`.

pub const HELP: &str = "\
walkv: a small, durable key-value server with a write-ahead log

USAGE:
    walkv [serve] [OPTIONS]          run the server (the default command)
    walkv get KEY [--etag] [--addr ADDR]    print KEY's value bytes to standard output
    walkv set KEY VALUE [--if-match SEQ | --if-absent] [--ttl SECONDS] [--addr ADDR]
                                     set KEY; VALUE `-` reads standard input
    walkv delete KEY [--if-match SEQ] [--addr ADDR]
                                     delete KEY (succeeds if it is already gone)
    walkv incr KEY [N] [--addr ADDR]     add N (default 1) to a counter, print its new value
    walkv txn FILE|- [--addr ADDR]   send a transaction (JSON): all of it happens, or none
    walkv ls [PREFIX] [-0] [--addr ADDR]    list the keys, one per line, in byte order
    walkv compact [--addr ADDR]      compact the server's log now, and wait until it is done
    walkv check [--data-dir DIR]     verify the log (safe on a running server's directory)
    walkv repair [--dry-run | --skip-damaged | --cut] [--data-dir DIR]
                                     say what a repair would keep, then do the one chosen
    walkv dump [--data-dir DIR] [--from-seq N] [--limit N]
                                     print the log's files and records (reads only)
    walkv export [--data-dir DIR] [--format jsonl|resp]
                                     write every key and value to standard output (reads only)
    walkv import [FILE|-] [--addr ADDR]     load an export (jsonl) into a running server
    walkv help COMMAND               more about one command

EXIT CODES:
    0 ok   1 key not found   2 usage   3 cannot connect
    4 rejected by the server (4xx), or a failed --if-match / --if-absent (412)
    5 server error (5xx)   6 log has a tail the server trims at startup
    7 log is corrupt, or not a walkv log   8 I/O error or locked
    9 the listener failed while serving   10 an fsync failed: the server stopped, restart it
    11 a server thread panicked (a bug): the server stopped, restart it
    12 the log was written by a newer walkv: upgrade walkv
    130 serve: a second stop signal while stopping

    walkv --version prints the version.
";

pub const HELP_SERVE: &str = "\
walkv serve: run the server

USAGE:
    walkv [serve] [--port N] [--bind ADDR] [--data-dir DIR] [--sync MODE]
                  [--sync-interval SECONDS] [--max-batch N] [--max-write-queue SIZE]
                  [--max-memory SIZE]
                  [--auth-token-file PATH] [--insecure-open] [--max-connections N]
                  [--idle-timeout S] [--header-timeout S] [--body-timeout S]
                  [--compact-ratio R] [--compact-min-size SIZE] [--spin-us N]
                  [--log-requests] [--log-format logfmt|json]
                  [--heartbeat SECONDS] [--follower-backlog SIZE] [--changes-retain SIZE]

OPTIONS:
    --port N                  TCP port (env PORT; default 8080; 0 picks a free port)
    --bind ADDR               address to listen on (default 127.0.0.1). An address that is
                              not loopback needs a token, or --insecure-open
    --auth-token-file PATH    every request must carry `Authorization: Bearer <token>`, the
                              first line of PATH (env WALKV_AUTH_TOKEN gives the token itself)
    --insecure-open           accept serving a non-loopback address without a token
    --data-dir DIR            where the log lives (env WALKV_DATA_DIR; default ./walkv-data;
                              created if missing; locked while the server runs)
    --sync MODE               when the log is fsynced (env WALKV_SYNC; default interval):
                              always    before any write is acknowledged (group commit)
                              interval  every --sync-interval seconds
                              never     only at shutdown; the OS writes back when it likes
                              In every mode an acknowledged write survives a killed process.
    --sync-interval SECONDS   the interval for --sync interval (default 5; 0.01 to 86400): a
                              power cut loses at most the writes acknowledged since the last
                              sync
    --max-batch N             most requests handled per batch, and most writes per fsync in
                              always mode (default 128; 1 turns group commit off)
    --max-write-queue SIZE    writes wait (reads go on) while the records queued for the log
                              hold SIZE bytes, as on a slow disk (default 64M; 1M to 64G)
    --max-memory SIZE         a write that would take the data's memory past SIZE gets 507;
                              reads and deletes go on (env WALKV_MAX_MEMORY; default three
                              quarters of the cgroup's or the machine's memory; 0: no limit)
    --max-connections N       open connections at most (default 1024; 1 to 1000000); one more
                              gets 503
    --idle-timeout SECONDS    close a connection idle between requests (default 60)
    --header-timeout SECONDS  a request header must arrive within this (default 10; 408)
    --body-timeout SECONDS    longest pause inside a request body (default 30; 408)
                              (the three timeouts: 0.1 to 86400 seconds)
    --compact-ratio R         compact the log by itself when its files hold more than R times
                              the live data (default 2; 0 turns automatic compaction off)
    --compact-min-size SIZE   ... and at least SIZE bytes (default 64M; suffixes K, M, G)
    --spin-us N               after a batch, look for the next request for up to N
                              microseconds before sleeping (default 60; 0 to 1000; 0 never);
                              it backs off by itself while looking does not pay
    --log-requests            one line per request on stderr (env WALKV_LOG_REQUESTS=1):
                              time id method path status in out dur_ms conn
    --log-format FORMAT       logfmt (default) or json, one object per line
                              (env WALKV_LOG_FORMAT)
    --heartbeat SECONDS       a change feed that follows sends a heartbeat line after this
                              long without a change (default 15; 0.1 to 86400)
    --follower-backlog SIZE   a follower of the change feed that falls this many bytes of
                              changes behind is cut (default 16M; 64K to 4G)
    --changes-retain SIZE     keep up to SIZE bytes of compacted segments as history the change
                              feed serves (default 0: history lives until the next compaction)

Any write can ask for its own fsync with ?sync (PUT /v1/k?sync); POST /sync waits until
everything written before it is synced; POST /compact compacts the log now and answers when
done; GET /changes is the change feed (?from=SEQ&follow); GET /status reports last_seq, synced_seq, disk_bytes (reserved_bytes of it reserved
ahead of the log), live_bytes, compaction, what waits for the disk (a write or fsync running,
the writes queued) and the memory used. GET /livez and /readyz are the probes (no token
needed); GET /metrics is for Prometheus. An unknown query parameter is a 400; the whole API
is described in docs/openapi.json.

SIGINT, SIGTERM or SIGHUP: stop, flush and fsync the log, exit 0 (a second signal exits at
once, 130).
Exit 2: bad options, an unreadable token, or an open address without a token.
Exit 7: the log is corrupt (run `walkv check`, then `walkv repair --dry-run`), or not a
walkv log. Exit 8: cannot start. Exit 12: the log was written by a newer walkv.
Exit 10: an fsync failed; the log stopped taking writes (503) and the server stopped.
";

pub const HELP_CLIENT: &str = "\
walkv get | set | delete | incr | txn | ls | watch: talk to a running server

USAGE:
    walkv get KEY [--etag] [--wait]      print the value's exact bytes (no newline added)
    walkv set KEY VALUE [--if-match SEQ | --if-absent] [--ttl SECONDS]
                                         VALUE `-` reads the value from standard input
    walkv delete KEY [--if-match SEQ]
    walkv incr KEY [N]                   add N (default 1) to the counter KEY, print its value
    walkv txn FILE                       send the transaction in FILE (`-`: standard input),
                                         print {\"seq\":N}
    walkv ls [PREFIX] [-0 | --null]      every key starting with PREFIX, in byte order
    walkv compact                        compact the server's log now; waits until done
    walkv watch [--prefix P] [--from SEQ] [--format jsonl|resp]
                                         print every change as it happens (the change feed),
                                         resuming by itself when the connection breaks

OPTIONS:
    --addr ADDR               server address (env WALKV_ADDR; default 127.0.0.1:8080)
    --auth-token-file PATH    send this token (env WALKV_AUTH_TOKEN gives the token itself)
    --etag                    get: also print the value's ETag (\"SEQ\") alone on a line of
                              standard error, as --if-match takes it
    --wait                    get: wait for the key's next write, then print what it left
                              (exit 1 if that was a delete)
    --prefix P                watch: only keys that start with P
    --from SEQ                watch: every change after SEQ (default: from now), such as the
                              seq `walkv export` says its copy is at
    --format FORMAT           watch: jsonl (default), the feed's lines; or resp, Redis
                              commands SET and DEL for `redis-cli --pipe`
    --if-match SEQ            set, delete: only if the key's ETag is still SEQ (compare-and-set)
    --if-absent               set: only if the key has no value yet
    --ttl SECONDS             set: the key expires SECONDS after the write (0.5 and 30 are
                              TTLs); without it, set clears the key's old TTL
    -0, --null                ls: end each key with a NUL byte instead of a newline, and print
                              its exact bytes

ls prints one key per line; a byte that is a control character, a backslash, or not UTF-8 is
written as \\xNN, so each line is one key and nothing reaches a terminal raw. Use -0 for the
exact bytes (`walkv ls -0 | xargs -0 ...`).

Use `--` before a KEY or VALUE that starts with `-` (a negative number such as -5 needs none:
`walkv set temp -5`). Keys and values may be any bytes.
ADDR is HOST:PORT, [IPv6]:PORT, or either after http:// (http://127.0.0.1:8080).

watch stops only on a 410 (the changes after SEQ were compacted away: start again from an
export), a refusal, or a closed standard output; it prints nothing twice.

EXIT CODES: 0 ok, 1 not found (get: walkv's own 404), 2 usage (also: `set KEY -` with standard
input closed), 3 cannot connect, 4 rejected (a value over 1 MiB; a failed --if-match or
--if-absent says the key's current ETag; incr of a value that is no integer, or that would
overflow; a transaction whose condition failed), 5 server error (or a 404 from something not
walkv).
A closed standard output (`walkv get k | head -c 10`) ends quietly with 0.
";

pub const HELP_CHECK: &str = "\
walkv check | repair: inspect and fix the log

USAGE:
    walkv check [--data-dir DIR]     read the log and report; changes nothing
    walkv repair [--dry-run | --skip-damaged | --cut] [--data-dir DIR]

OPTIONS:
    --data-dir DIR    the server's data directory (env WALKV_DATA_DIR; default ./walkv-data)
    --dry-run         print what each repair would keep and drop, change nothing
    --skip-damaged    keep every record that checks out; drop only the damaged bytes
    --cut             keep the records before the first damage; drop everything after it

check prints its verdict on stdout and exits 0 for a clean log, 6 for a tail the server trims
by itself at startup (an unfinished append, or bytes a power cut may have lost), 7 for
corruption (damage to data that had been on disk: the server refuses to start) or a file that
is not a walkv log, 12 for a log written by a newer walkv. On a running server's directory it
checks what is complete and never judges the record being written.

repair first prints its plan: the records before and after the damage, the sequence numbers
that would be missing, the keys the later records touch. Without a choice it stops there
(exit 2). What it drops is kept in DIR/walkv.wal.skipped-TIME or DIR/walkv.wal.cut-OFFSET-TIME;
sequence numbers are never reused. It takes the data directory's lock: stop the server first.
";

pub const HELP_DATA: &str = "\
walkv dump | export | import: see the log's records, take the data out, bring it in

USAGE:
    walkv dump [--data-dir DIR] [--from-seq N] [--limit N]
    walkv export [--data-dir DIR] [--format jsonl|resp]
    walkv import [FILE|-] [--addr ADDR] [--auth-token-file PATH]

dump prints every file of the log in replay order, then one line per record: file, offset,
seq, type, key and value lengths, checksum ok or BAD, the key and the first 64 bytes of the
value (bytes that are not printable ASCII as \\xNN). It says where reserved space, a torn tail
or damage begins and what recovery would do there. --from-seq N starts at the first record
with seq N or more; --limit N stops after N records.

export writes every key and its value as of the moment it starts: jsonl (the default) is one
{\"key\":\"...\",\"value\":\"...\"} per line in byte order of the keys, with \"key_base64\" or
\"value_base64\" for bytes that are not UTF-8; resp is Redis SET commands for `redis-cli --pipe`.

dump and export only read the files: they work on a running server's directory, take no lock
and change nothing.

import reads jsonl (an export) from FILE or standard input and writes it into the server at
--addr, then asks for an fsync and prints how many keys it wrote. A malformed line stops it
(exit 2) with its number; the lines before it are written, nothing after.

EXIT CODES: 0 ok, 2 usage or a malformed import line, 3 cannot connect, 4 rejected, 5 server
error, 7 dump or export found damage that recovery would refuse, 8 I/O error.
";
