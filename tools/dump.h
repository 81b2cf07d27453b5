/*
 * dump.h: reading the dump files `import` and `produce` take, JSONL or CSV rows of osu!track's
 * tables (hiscore_updates, beatmaps, difficulty records). One reader for both commands, so a file
 * cannot be read one way into a store and another way into Kafka.
 *
 * - A UTF-8 byte order mark at the start of the file is skipped; so are blank lines.
 * - The format: a .csv suffix is CSV, .jsonl or .json is JSONL, anything else is JSONL when its
 *   first non-blank line starts with '{' (after spaces) and CSV otherwise.
 * - CSV is RFC 4180: fields may be quoted, "" is a quote inside one, a quoted field may span
 *   lines, but only in the free-text columns of a beatmaps row (title, artist, version,
 *   creator): a line break in any other column is a stray quote's work. A quote inside an
 *   unquoted field is an ordinary character (as most readers take it).
 *   The first record is the header; it must name each column once, none empty, and the columns
 *   the decoder requires of the kind of rows it names (dump_csv_header()).
 * - A record that cannot be read is an error of that record, named by the line where it started,
 *   never a silent loss: with a quote left open to the end of the file (or past
 *   DUMP_RECORD_MAX_BYTES), text after a closing quote, more than DUMP_MAX_CELLS cells, a cell
 *   count other than the header's or a line break outside the text columns. When such a record
 * spans several lines (a stray quote swallows the lines after it), its first line is the bad record
 * and the lines after it are read again, as the rows they are.
 *
 * Line numbers are physical lines of the file, 1-based. Not thread-safe; one reader per file.
 */
#ifndef ATL_TOOLS_DUMP_H
#define ATL_TOOLS_DUMP_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define DUMP_MAX_CELLS        64
#define DUMP_RECORD_MAX_BYTES (1u << 20) /* a quoted field still open past this is an error */

typedef enum dump_format {
    DUMP_JSONL,
    DUMP_CSV,
} dump_format_t;

typedef struct dump {
    FILE *f; /* stdin for "-" (not closed) */
    const char *path;
    dump_format_t format;
    uint64_t lineno;      /* physical lines consumed */
    uint64_t record_line; /* CSV: where the last record (good or bad) started */
    int started;          /* a line was read from f: a BOM can only come first */
    char *buf;            /* getline() buffer */
    size_t buf_cap;
    char *again; /* lines to read (again) before f: a peeked first line, a bad record's rest */
    size_t again_len, again_pos;
    char *rest; /* the lines of the current CSV record after its first, with their '\n' */
    size_t rest_len, rest_cap;
    char *text; /* the current CSV record's cells, NUL-terminated, back to back */
    size_t text_len, text_cap;
    size_t cell_off[DUMP_MAX_CELLS];
    int n_cells;                 /* of the current record (may exceed DUMP_MAX_CELLS) */
    char *cells[DUMP_MAX_CELLS]; /* after dump_csv_next() returned 1: n_names cells */
    char *names[DUMP_MAX_CELLS]; /* the header, after dump_csv_header() */
    int n_names;
} dump_t;

/**
 * Open @p path ("-": stdin), skip a byte order mark and find the format.
 * @param[out] d  initialised on success (release with dump_close()), untouched otherwise.
 * @return 0 or -errno (message in @p err: "cannot open PATH: reason").
 */
int dump_open(dump_t *d, const char *path, char *err, size_t errlen);

/** Close what dump_open() opened; a zeroed @p d is a no-op. */
void dump_close(dump_t *d);

/**
 * JSONL: the next non-blank line, without its line end ("\n" or "\r\n"); d->lineno is its
 * number. The text stays valid until the next call.
 * @return 1, 0 at the end, or -EIO (a read error).
 */
int dump_line_next(dump_t *d, const char **line, size_t *len);

/**
 * CSV: read and check the header (the first record). At the end of the input already (an empty
 * file) d->n_names stays 0 and it returns 0.
 * @return 0; ATL_EBADEVENT with "LINE: the CSV header ..." in @p err (an unreadable header, an
 *         empty or repeated column name, a missing key or required column); or -EIO.
 */
int dump_csv_header(dump_t *d, char *err, size_t errlen);

/**
 * CSV: the next record, d->cells[0 .. d->n_names) (valid until the next call), started on line
 * d->record_line.
 * @return 1; 0 at the end; ATL_EBADEVENT for a record that cannot be read (why in @p err, the
 *         caller counts it and goes on); or -EIO.
 */
int dump_csv_next(dump_t *d, char *err, size_t errlen);

/**
 * The current CSV record as the text of a JSON object (malloc'd, the caller frees), each cell
 * typed as the store's CSV decoder (store_event_decode_fields) types it: "", NULL and \N are
 * null, a cell strtod() takes whole is a number, anything else a string. A row sent this way
 * decodes as importing the CSV decodes it.
 */
char *dump_csv_json(const dump_t *d);

#endif
