/* An LD_PRELOAD interposer that fails the Nth I/O call on LMDB's data file, or cuts the
 * power there (issue 16).
 *
 * Environment:
 *   FAULT_FILE   suffix of the path to watch (default "data.mdb")
 *   FAULT_AT     the 1-based number of the watched call to act on (0 or unset: none)
 *   FAULT_MODE   "error" (default): that call does nothing and returns -1 with FAULT_ERRNO;
 *                "power": just before that call (or at exit, when the process makes fewer
 *                calls) the power is cut, see below
 *   FAULT_ERRNO  the errno of "error" mode (default EIO)
 *   FAULT_KEEP   for "power": "none" (default) undoes every write not yet flushed; "some"
 *                keeps a random subset of them, 512-byte sector by sector (writes reach a
 *                disk out of order, and a write can be torn at a sector boundary)
 *   FAULT_SEED   for FAULT_KEEP=some: the seed of the choice
 *   FAULT_COUNT  a file the number of watched calls is written to at exit
 *
 * Watched calls: write, pwrite, pwrite64, pwritev, pwritev64 (and the write side of writev),
 * fsync, fdatasync and ftruncate(64) on a descriptor of the file, and every msync.
 *
 * Power loss: every write and truncate of a watched file is journalled with the bytes it
 * replaced and the file's size before it; a successful fsync or fdatasync of the file empties
 * its journal (what came before is on disk); a write through a descriptor opened with O_SYNC
 * or O_DSYNC is on disk when it returns, so it is always kept. To cut the power, the journal
 * is undone newest first, which gives back the file as the last flush left it, then the kept
 * part of it (durable writes, and for FAULT_KEEP=some the chosen sectors) is written again
 * oldest first; the process then ends at once with _exit(86), before any other thread can
 * write. The next process reads the file as a disk would hold it after the power came back.
 * (Writes through a shared writable map are not modelled: the ledger does not use
 * MDB_WRITEMAP.)
 *
 * Built by the reliability tests with the machine's C compiler:
 *   cc -shared -fPIC -O2 interpose.c -o libfault.so -ldl -lpthread
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_FDS 4096
static volatile char watched[MAX_FDS];
static long calls = 0;
static long fail_at = 0;
static int fail_errno = EIO;
static const char *suffix = "data.mdb";
static int power_mode = 0;
static int keep_some = 0;
static unsigned long long rng_state = 0x9E3779B97F4A7C15ULL;

/* ---- the power-loss journal ---- */

enum { ENTRY_WRITE, ENTRY_TRUNCATE };

typedef struct {
    int kind;
    int durable;              /* written through an O_SYNC/O_DSYNC descriptor */
    off_t offset;             /* write: where; truncate: the new length */
    size_t length;            /* write: bytes written */
    unsigned char *replaced;  /* the bytes the write or a shrinking truncate replaced */
    size_t replaced_length;
    unsigned char *bytes;     /* write: the bytes written */
    off_t size_before;        /* the file's size before the call */
} entry_t;

typedef struct {
    dev_t dev;
    ino_t ino;
    int shadow;               /* our own read-write descriptor of the file */
    entry_t *journal;
    size_t count, capacity;
} file_t;

#define MAX_FILES 16
static file_t files[MAX_FILES];
static int file_count = 0;
static signed char fd_file[MAX_FDS];  /* index into files + 1; 0: not a watched file */
static char fd_sync[MAX_FDS];          /* opened with O_SYNC or O_DSYNC */
static pthread_mutex_t journal_lock = PTHREAD_MUTEX_INITIALIZER;
static int power_cut_done = 0;

static void power_cut(const char *when);

__attribute__((constructor)) static void fault_init(void) {
    const char *at = getenv("FAULT_AT");
    const char *err = getenv("FAULT_ERRNO");
    const char *file = getenv("FAULT_FILE");
    const char *mode = getenv("FAULT_MODE");
    const char *keep = getenv("FAULT_KEEP");
    const char *seed = getenv("FAULT_SEED");
    if (at) fail_at = atol(at);
    if (err) fail_errno = atoi(err);
    if (file && *file) suffix = file;
    power_mode = mode && strcmp(mode, "power") == 0;
    keep_some = keep && strcmp(keep, "some") == 0;
    if (seed) rng_state ^= strtoull(seed, NULL, 10) * 0xBF58476D1CE4E5B9ULL;
}

__attribute__((destructor)) static void fault_done(void) {
    const char *out = getenv("FAULT_COUNT");
    if (out) {
        FILE *f = fopen(out, "w");
        if (f) {
            fprintf(f, "%ld\n", calls);
            fclose(f);
        }
    }
    /* the process made fewer watched calls than FAULT_AT: the power goes after it ended */
    if (power_mode && fail_at > 0) {
        pthread_mutex_lock(&journal_lock);
        power_cut("at exit");
    }
}

static int ends_with(const char *s, const char *tail) {
    size_t a = strlen(s), b = strlen(tail);
    return a >= b && strcmp(s + a - b, tail) == 0;
}

#define REAL(name) static __typeof__(&name) real_##name; if (!real_##name) real_##name = (__typeof__(&name))dlsym(RTLD_NEXT, #name)

static unsigned long long next_random(void) {
    unsigned long long z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* The journal of a watched descriptor's file, registering the file at first sight. */
static file_t *file_for_path(int fd, const char *path) {
    struct stat st;
    if (fstat(fd, &st) != 0) return NULL;
    for (int i = 0; i < file_count; i++)
        if (files[i].dev == st.st_dev && files[i].ino == st.st_ino) return &files[i];
    if (file_count == MAX_FILES) return NULL;
    REAL(open);
    int shadow = real_open(path, O_RDWR | O_CLOEXEC, 0);
    if (shadow < 0) return NULL;
    file_t *f = &files[file_count++];
    memset(f, 0, sizeof *f);
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    f->shadow = shadow;
    return f;
}

static void track(int fd, int flags, const char *path) {
    if (fd < 0 || fd >= MAX_FDS) return;
    watched[fd] = path && ends_with(path, suffix);
    fd_file[fd] = 0;
    fd_sync[fd] = (flags & (O_SYNC | O_DSYNC)) != 0;
    if (power_mode && watched[fd]) {
        pthread_mutex_lock(&journal_lock);
        file_t *f = file_for_path(fd, path);
        if (f) fd_file[fd] = (signed char)(f - files + 1);
        pthread_mutex_unlock(&journal_lock);
    }
}

static file_t *file_of(int fd) {
    if (fd < 0 || fd >= MAX_FDS || fd_file[fd] == 0) return NULL;
    return &files[fd_file[fd] - 1];
}

static off_t size_of(const file_t *f) {
    struct stat st;
    return fstat(f->shadow, &st) == 0 ? st.st_size : 0;
}

static void push(file_t *f, entry_t e) {
    if (f->count == f->capacity) {
        size_t capacity = f->capacity ? f->capacity * 2 : 64;
        entry_t *grown = realloc(f->journal, capacity * sizeof *grown);
        if (!grown) abort();
        f->journal = grown;
        f->capacity = capacity;
    }
    f->journal[f->count++] = e;
}

static void forget(file_t *f) {
    for (size_t i = 0; i < f->count; i++) {
        free(f->journal[i].replaced);
        free(f->journal[i].bytes);
    }
    f->count = 0;
}

/* Reads what [offset, offset + length) holds now (the part inside the file). */
static unsigned char *read_range(file_t *f, off_t offset, size_t length, off_t size, size_t *got) {
    size_t have = offset < size ? (size_t)(size - offset) : 0;
    if (have > length) have = length;
    unsigned char *buffer = malloc(have ? have : 1);
    if (!buffer) abort();
    ssize_t n = have ? pread(f->shadow, buffer, have, offset) : 0;
    *got = n > 0 ? (size_t)n : 0;
    return buffer;
}

/* Journals a write of `length` bytes at `offset` about to be made through `fd`. */
static entry_t before_write(file_t *f, int fd, const void *data, size_t length, off_t offset) {
    entry_t e = { ENTRY_WRITE, fd_sync[fd], offset, length, NULL, 0, NULL, size_of(f) };
    e.replaced = read_range(f, offset, length, e.size_before, &e.replaced_length);
    e.bytes = malloc(length ? length : 1);
    if (!e.bytes) abort();
    memcpy(e.bytes, data, length);
    return e;
}

static void after_write(file_t *f, entry_t e, ssize_t written) {
    if (written <= 0) {
        free(e.replaced);
        free(e.bytes);
        return;
    }
    e.length = (size_t)written;
    push(f, e);
}

/* Gathers an iovec into one buffer. */
static unsigned char *gather(const struct iovec *iov, int cnt, size_t *length) {
    size_t total = 0;
    for (int i = 0; i < cnt; i++) total += iov[i].iov_len;
    unsigned char *buffer = malloc(total ? total : 1);
    if (!buffer) abort();
    size_t at = 0;
    for (int i = 0; i < cnt; i++) {
        memcpy(buffer + at, iov[i].iov_base, iov[i].iov_len);
        at += iov[i].iov_len;
    }
    *length = total;
    return buffer;
}

/* Cuts the power: every file back to its last flush plus what is kept; then the process ends.
 * Called with journal_lock held. */
static void power_cut(const char *when) {
    if (power_cut_done) return;
    power_cut_done = 1;
    REAL(pwrite);
    REAL(ftruncate);
    long undone = 0, kept_sectors = 0, dropped_sectors = 0;
    for (int i = 0; i < file_count; i++) {
        file_t *f = &files[i];
        /* newest first: the file as the last flush left it */
        for (size_t k = f->count; k-- > 0;) {
            entry_t *e = &f->journal[k];
            if (e->kind == ENTRY_WRITE) {
                if (e->replaced_length) real_pwrite(f->shadow, e->replaced, e->replaced_length, e->offset);
                if ((off_t)(e->offset + e->length) > e->size_before) real_ftruncate(f->shadow, e->size_before);
            } else {
                real_ftruncate(f->shadow, e->size_before);
                if (e->replaced_length) real_pwrite(f->shadow, e->replaced, e->replaced_length, e->offset);
            }
            undone++;
        }
        /* oldest first: what reached the disk anyway */
        for (size_t k = 0; k < f->count; k++) {
            entry_t *e = &f->journal[k];
            if (e->kind == ENTRY_TRUNCATE) {
                if (keep_some && (next_random() & 1)) real_ftruncate(f->shadow, e->offset);
                continue;
            }
            if (e->durable) {
                real_pwrite(f->shadow, e->bytes, e->length, e->offset);
                continue;
            }
            if (!keep_some) {
                dropped_sectors += (long)((e->length + 511) / 512);
                continue;
            }
            off_t end = e->offset + (off_t)e->length;
            for (off_t at = e->offset; at < end;) {
                off_t boundary = (at / 512 + 1) * 512;
                off_t stop = boundary < end ? boundary : end;
                if (next_random() & 1) {
                    real_pwrite(f->shadow, e->bytes + (at - e->offset), (size_t)(stop - at), at);
                    kept_sectors++;
                } else {
                    dropped_sectors++;
                }
                at = stop;
            }
        }
    }
    char line[200];
    int n = snprintf(line, sizeof line, "power cut %s (watched call %ld): %ld unflushed writes, %ld sectors kept, %ld lost\n",
                     when, calls, undone, kept_sectors, dropped_sectors);
    REAL(write);
    if (n > 0) real_write(2, line, (size_t)n);
    _exit(86);
}


/* Counts a watched call; returns 1 when this one must fail. */
static int hit(int fd) {
    if (fd >= 0 && (fd >= MAX_FDS || !watched[fd])) return 0;
    long n = __atomic_add_fetch(&calls, 1, __ATOMIC_SEQ_CST);
    if (power_mode) {
        if (fail_at > 0 && n == fail_at) power_cut("before a call");
        return 0;
    }
    if (fail_at > 0 && n == fail_at) {
        errno = fail_errno;
        return 1;
    }
    return 0;
}

int open(const char *path, int flags, ...) {
    REAL(open);
    mode_t mode = 0;
    if (flags & O_CREAT) { va_list ap; va_start(ap, flags); mode = va_arg(ap, mode_t); va_end(ap); }
    int fd = real_open(path, flags, mode);
    track(fd, flags, path);
    return fd;
}

int open64(const char *path, int flags, ...) {
    REAL(open64);
    mode_t mode = 0;
    if (flags & O_CREAT) { va_list ap; va_start(ap, flags); mode = va_arg(ap, mode_t); va_end(ap); }
    int fd = real_open64(path, flags, mode);
    track(fd, flags, path);
    return fd;
}

int close(int fd) {
    REAL(close);
    if (fd >= 0 && fd < MAX_FDS) {
        watched[fd] = 0;
        fd_file[fd] = 0;
    }
    return real_close(fd);
}

/* Runs a watched call into `result`: counted, and in error mode failed when it is the chosen
 * one; in power mode under the journal's lock (the power is cut before the chosen one), with
 * `before` and `after` run around it when the descriptor is of a journalled file (`f`). */
#define WATCHED(result, fd, call, before, after)        \
    do {                                                \
        if (!power_mode) {                              \
            result = hit(fd) ? -1 : (call);             \
            break;                                      \
        }                                               \
        pthread_mutex_lock(&journal_lock);              \
        file_t *f = file_of(fd);                        \
        hit(fd);                                        \
        if (f) { before; }                              \
        result = (call);                                \
        int saved = errno;                              \
        if (f) { after; }                               \
        pthread_mutex_unlock(&journal_lock);            \
        errno = saved;                                  \
    } while (0)

#define JOURNALLED_WRITE(fd, data, length, offset, call)                                      \
    ssize_t r;                                                                                 \
    entry_t e;                                                                                 \
    WATCHED(r, fd, call, e = before_write(f, fd, data, length, offset), after_write(f, e, r)); \
    return r

ssize_t write(int fd, const void *buf, size_t n) {
    REAL(write);
    JOURNALLED_WRITE(fd, buf, n, lseek(fd, 0, SEEK_CUR), real_write(fd, buf, n));
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
    REAL(pwrite);
    JOURNALLED_WRITE(fd, buf, n, off, real_pwrite(fd, buf, n, off));
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) {
    REAL(pwrite64);
    JOURNALLED_WRITE(fd, buf, n, off, real_pwrite64(fd, buf, n, off));
}

/* pwritev, pwritev64 (positioned) and writev (at the descriptor's offset). */
static ssize_t vector_write(int fd, const struct iovec *iov, int cnt, off_t offset,
                            ssize_t (*positioned)(int, const struct iovec *, int, off_t)) {
    REAL(writev);
    size_t length = 0;
    unsigned char *data = NULL;
    ssize_t r;
    entry_t e;
    WATCHED(r, fd, positioned ? positioned(fd, iov, cnt, offset) : real_writev(fd, iov, cnt),
            (data = gather(iov, cnt, &length), e = before_write(f, fd, data, length, positioned ? offset : lseek(fd, 0, SEEK_CUR))),
            after_write(f, e, r));
    free(data);
    return r;
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off) {
    REAL(pwritev);
    return vector_write(fd, iov, cnt, off, real_pwritev);
}

ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off_t off) {
    REAL(pwritev64);
    return vector_write(fd, iov, cnt, off, real_pwritev64);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt) {
    return vector_write(fd, iov, cnt, 0, NULL);
}

/* A successful flush empties the file's journal: what came before is on disk. */
int fsync(int fd) {
    REAL(fsync);
    int r;
    WATCHED(r, fd, real_fsync(fd), (void)0, if (r == 0) forget(f));
    return r;
}

int fdatasync(int fd) {
    REAL(fdatasync);
    int r;
    WATCHED(r, fd, real_fdatasync(fd), (void)0, if (r == 0) forget(f));
    return r;
}

static int truncate_call(int fd, off_t len, int (*call)(int, off_t)) {
    int r;
    entry_t e;
    WATCHED(r, fd, call(fd, len),
            (e = (entry_t){ ENTRY_TRUNCATE, 0, len, 0, NULL, 0, NULL, size_of(f) },
             e.replaced = len < e.size_before ? read_range(f, len, (size_t)(e.size_before - len), e.size_before, &e.replaced_length) : NULL),
            if (r == 0) push(f, e); else free(e.replaced));
    return r;
}

int ftruncate(int fd, off_t len) {
    REAL(ftruncate);
    return truncate_call(fd, len, real_ftruncate);
}

int ftruncate64(int fd, off_t len) {
    REAL(ftruncate64);
    return truncate_call(fd, len, real_ftruncate64);
}

int msync(void *addr, size_t len, int flags) {
    REAL(msync);
    int r;
    WATCHED(r, -1, real_msync(addr, len, flags), (void)0, (void)0);
    return r;
}
