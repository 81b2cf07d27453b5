/*
 * cli.h: what every atlasctl subcommand shares: option tables that drive both parsing and
 * --help (STYLE R13), exit codes, allocation that aborts on OOM, and progress lines on stderr.
 */
#ifndef ATL_CLI_H
#define ATL_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "pipeline/clock.h" /* pipeline_now(): the clock of every command */

/** Exit codes of every command (jq main.c model). */
enum cli_exit {
    CLI_EXIT_OK = 0,
    CLI_EXIT_FAIL = 1,
    CLI_EXIT_USAGE = 2,
};

typedef enum cli_type {
    CLI_FLAG, /* int, set to 1 */
    CLI_STR,  /* const char * */
    CLI_NEED, /* const char *, NULL by default, that the command cannot run without:
               * cli_parse() refuses its absence, --help marks it (required) */
    CLI_U64,  /* uint64_t */
    CLI_F64,  /* double */
} cli_type_t;

typedef struct cli_opt {
    const char *name; /* long name without dashes */
    cli_type_t type;
    void *dst;
    const char *arg;  /* placeholder in --help, e.g. "DIR" */
    const char *help; /* one line; defaults are written into it */
} cli_opt_t;

/* The values a numeric option accepts, inclusive (STYLE R6's min/max). A value outside is a
 * usage error naming the option and the range, so a too-large count cannot wrap into a
 * uint32_t and a negative minimum cannot slip through. */
typedef struct cli_range {
    const char *name; /* an option of the command's table (CLI_U64 or CLI_F64) */
    double min, max;
} cli_range_t;

typedef struct cli_cmd {
    const char *name;
    const char *usage;   /* after "atlasctl NAME " */
    const char *summary; /* one line */
    const cli_opt_t *opts;
    size_t n_opts;
    /* numeric options not listed take any value of their type (CLI_F64: any finite one) */
    const cli_range_t *ranges;
    size_t n_ranges;
} cli_cmd_t;

/** cli_parse() found --help and printed it: a success with nothing left to do. */
#define CLI_PARSE_HELP 1

/**
 * Parse argv[1..] of a subcommand against its option table; `--name=value` and `--name value`
 * both work; non-option arguments are collected in order into @p rest (argv-owned strings,
 * a malloc'd array the caller frees).
 *
 * Usage errors, each naming the option: an unknown option, a missing value, an empty string
 * (for CLI_STR, CLI_NEED and for arguments: every one names a path, a list or an id, and "" would
 * otherwise name the current or the root directory), a number that does not parse, is not
 * finite or lies outside the command's ranges, a CLI_NEED option not given (checked after
 * the whole command line, so --help works without it).
 * @return 0 to go on, CLI_PARSE_HELP after printing --help, or ATL_ECONFIG after printing the
 *         usage error. cli_exit() turns any of them into the command's exit code.
 */
int cli_parse(const cli_cmd_t *cmd, int argc, char **argv, const char ***rest, size_t *n_rest);

/**
 * The exit code (enum cli_exit) for a result in the tree's convention: 0 and CLI_PARSE_HELP are
 * CLI_EXIT_OK, ATL_ECONFIG (a usage error) CLI_EXIT_USAGE, any other negative code CLI_EXIT_FAIL.
 */
int cli_exit(int rc);

/**
 * Parse all of @p s as a finite double (no NaN, no infinity, nothing after the number).
 * @return 0 and *out, or -EINVAL.
 */
int cli_f64_parse(const char *s, double *out);

/** Print a subcommand's help to @p f. */
void cli_help(const cli_cmd_t *cmd, FILE *f);

/** malloc/calloc/realloc that abort with the requested size on OOM (STYLE R3). */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);

/**
 * Create a directory and its parents (mode 0755); existing ones are fine.
 * @return 0, -EINVAL (an empty path), -ENAMETOOLONG or -errno.
 */
int cli_mkdir_p(const char *path);

/**
 * Whether @p db is a store: a directory holding data.mdb. Commands that work on an existing
 * store ask before they touch it, since opening or locking would create data.mdb or
 * atlasd.lock in any directory. Prints "atlasctl CMD: DIR is not a store ..." (or why DIR
 * cannot be read) when not.
 * @return 0, ATL_ENOTFOUND (no data.mdb) or -errno.
 */
int cli_store_check(const char *cmd, const char *db);

/**
 * Open an existing store (cli_store_check() first) for command @p cmd, printing "atlasctl CMD:
 * cannot open store DIR: reason" on failure. @return 0 and *out, or the error code.
 */
struct store;
int cli_store_open(const char *cmd, const char *db, int read_only, struct store **out);

/**
 * The end of a command: flush stdout and turn a failed write of it (a full disk, a closed
 * pipe) into a failure with a message naming @p cmd. atlasctl's main() calls it once for every
 * command, so no command checks its own printf()s.
 * @return @p code, or CLI_EXIT_FAIL after printing why stdout could not be written (only when
 *         @p code is CLI_EXIT_OK: a command that failed has said why).
 */
int cli_stdout_close(const char *cmd, int code);

/**
 * Read a whole file into a malloc'd buffer (one spare byte after the end). Prints nothing.
 * @return the buffer and *len, or NULL (errno says why).
 */
uint8_t *cli_read_file(const char *path, size_t *len);

/**
 * A progress reporter for long work on stderr: a rewritten line on a terminal, a plain line
 * every few seconds otherwise.
 */
typedef struct cli_progress {
    const char *what;
    double start, last;
    int tty;
    int open; /* a line on the terminal waits for its end (cli_progress_done) */
} cli_progress_t;

void cli_progress_init(cli_progress_t *p, const char *what);

/** Report a status line (printf format) unless one was printed less than the interval ago. */
void cli_progress_update(cli_progress_t *p, int force, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/** Finish the progress line, if one was printed on a terminal since the last call. */
void cli_progress_done(cli_progress_t *p);

/** An atl_progress_cb printing "stage: NN%" through a cli_progress_t (ud). */
int cli_progress_cb(void *ud, const char *stage, double frac);

struct store_prefetch_result;
/**
 * Before a walk of the whole store: store_prefetch() with progress on @p prog, then say on
 * stderr what it read, or why it read nothing (nothing when the file was cached but for less
 * than 64 MiB). A
 * failure only costs the speed-up: the command goes on. @p prog and @p r may be NULL (progress
 * lines of their own, no result). @return the seconds it took.
 */
double cli_store_prefetch(const char *cmd, struct store *s, cli_progress_t *prog,
                          struct store_prefetch_result *r);

/* Subcommands, each `int cmd_X(int argc, char **argv)` returning an exit code. */
int cmd_gen(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_compact(int argc, char **argv);
int cmd_embed(int argc, char **argv);
int cmd_export_graph(int argc, char **argv);
int cmd_snapshots(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_debug_poke(int argc, char **argv);

/* Kafka commands (tools/kafka_cli.c, over kafkaconf/). */
int cmd_kafka_mock(int argc, char **argv);
int cmd_produce(int argc, char **argv);
int cmd_consume(int argc, char **argv);

/* `rebuild` on a running daemon or offline (tools/admin_cli.c, over pipeline/). */
int cmd_rebuild(int argc, char **argv);

#endif
