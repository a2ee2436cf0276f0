/*
 * umm-trace: draw libumm's trace as two SVG pictures.
 *
 *   umm-trace [-o PREFIX] TRACE-FILE
 *   umm-trace [-o PREFIX] -- COMMAND [ARG...]
 *
 * The trace file is what libumm writes at exit when UMM_TRACE_FILE names
 * it (src/trap.c, umm__trace_file_write): a header line, then one line per
 * event,
 *
 *   # umm-trace 1 page 4096 budget PAGES
 *   WHEN_NS KIND ADDR WRITE FILE_OFFSET PAGES NSEC RESIDENT FRAMES
 *
 * The second form runs COMMAND with UMM_TRACE_FILE=PREFIX.trace first.
 * Writes PREFIX-pages.svg (every event a dot at its page and time, coloured
 * by what libumm did; a run of pages a bar) and PREFIX-resident.svg (the
 * pages resident in the process and libumm's frames in use, over time,
 * against the budget), and prints their names.  No library but libc: the
 * SVG is written directly.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct ev {
    uint64_t when, addr, off, pages, nsec, resident, frames;
    int write, cat;
};

/* What an event did, as drawn: kinds of the trace, read split in two. */
enum cat { C_READ, C_READAHEAD, C_CACHED, C_COW, C_DIRTY, C_ZERO, C_SIGBUS, C_RECLAIM, C_SWAPIN, C_SPURIOUS, NCAT };
static const struct {
    const char *kind, *cls, *colour, *label;
} cats[NCAT] = {
    [C_READ] = { "fill", "read", "#1f77b4", "read from the file (one page)" },
    [C_READAHEAD] = { NULL, "readahead", "#17becf", "read-ahead (pages > 1)" },
    [C_CACHED] = { "cached", "cached", "#8c8c8c", "found in the page cache" },
    [C_COW] = { "cow", "cow", "#ff7f0e", "copy-on-write" },
    [C_DIRTY] = { "dirty", "dirty", "#d62728", "shared page dirtied" },
    [C_ZERO] = { "zero", "zero", "#2ca02c", "zero-filled" },
    [C_SIGBUS] = { "sigbus", "sigbus", "#000000", "SIGBUS (past end of file)" },
    [C_RECLAIM] = { "reclaim", "reclaim", "#9467bd", "reclaimed" },
    [C_SWAPIN] = { "swapin", "swapin", "#e377c2", "swapped in" },
    [C_SPURIOUS] = { "spurious", "spurious", "#bcbd22", "already handled" },
};

static struct ev *evs;
static size_t nev;
static uint64_t page_size = 4096, budget;
static const char *progname = "umm-trace";

static void die(const char *what)
{
    fprintf(stderr, "%s: %s: %s\n", progname, what, strerror(errno));
    exit(1);
}

static int load(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        die(path);
    char line[512], kind[32];
    size_t cap = 0;
    unsigned long lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (line[0] == '#') {
            char *p;
            if ((p = strstr(line, " page ")))
                page_size = strtoull(p + 6, NULL, 10);
            if ((p = strstr(line, " budget ")))
                budget = strtoull(p + 8, NULL, 10);
            continue;
        }
        struct ev e;
        unsigned long long w, a, o, pg, ns, r, fr;
        if (sscanf(line, "%llu %31s %llx %d %llx %llu %llu %llu %llu", &w, kind, &a, &e.write, &o, &pg, &ns, &r,
                   &fr) != 9) {
            fprintf(stderr, "%s: %s:%lu: not an event line\n", progname, path, lineno);
            fclose(f);
            return -1;
        }
        e.when = w, e.addr = a, e.off = o, e.pages = pg, e.nsec = ns, e.resident = r, e.frames = fr;
        e.cat = -1;
        for (int c = 0; c < NCAT; c++)
            if (cats[c].kind && strcmp(kind, cats[c].kind) == 0)
                e.cat = c;
        if (e.cat < 0)
            continue; /* a kind this umm-trace does not know */
        if (e.cat == C_READ && e.pages > 1)
            e.cat = C_READAHEAD;
        if (nev == cap) {
            cap = cap ? cap * 2 : 1024;
            if (!(evs = realloc(evs, cap * sizeof *evs)))
                die("memory");
        }
        evs[nev++] = e;
    }
    fclose(f);
    if (page_size == 0)
        page_size = 4096;
    return 0;
}

/* ------------------------------------------------------------ drawing */

#define W 960                /* picture */
#define H 560
#define L 110                /* plot area: left, top, width, height */
#define T 50
#define PW 560
#define PH 440

static uint64_t t0, t1;

static double xof(uint64_t when)
{
    return L + (t1 > t0 ? (double)(when - t0) / (double)(t1 - t0) : 0.5) * PW;
}

static const char *time_label(double ns, char *buf, size_t n)
{
    if (ns >= 1e9)
        snprintf(buf, n, "%.3g s", ns / 1e9);
    else if (ns >= 1e6)
        snprintf(buf, n, "%.3g ms", ns / 1e6);
    else
        snprintf(buf, n, "%.3g us", ns / 1e3);
    return buf;
}

static void escape(FILE *o, const char *s)
{
    for (; *s; s++)
        switch (*s) {
        case '&': fputs("&amp;", o); break;
        case '<': fputs("&lt;", o); break;
        case '>': fputs("&gt;", o); break;
        case '"': fputs("&quot;", o); break;
        default: fputc(*s, o);
        }
}

static FILE *svg_open(const char *path, const char *title, const char *name)
{
    FILE *o = fopen(path, "w");
    if (!o)
        die(path);
    fprintf(o, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n"
               "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n"
               "<text x=\"%d\" y=\"24\" font-size=\"15\">",
            W, H, W, H, W, H, L);
    escape(o, title);
    fputs(": ", o);
    escape(o, name);
    fprintf(o, "</text>\n<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#444\"/>\n", L, T,
            PW, PH);
    /* The time axis. */
    char buf[32];
    for (int i = 0; i <= 4; i++) {
        double x = L + PW * i / 4.0;
        fprintf(o, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#444\"/>\n", x, T + PH, x, T + PH + 5);
        fprintf(o, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", x, T + PH + 18,
                time_label((double)(t1 - t0) * i / 4.0, buf, sizeof buf));
    }
    fprintf(o, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">time since the first event</text>\n", L + PW / 2,
            T + PH + 36);
    return o;
}

static void svg_close(FILE *o, const char *path)
{
    fputs("</svg>\n", o);
    if (fclose(o) != 0)
        die(path);
}

/* The page picture's rows: the pages events touched, in runs (gaps of up
 * to GAP pages kept, longer ones cut out and marked), lowest at the
 * bottom. */
#define GAP 16
struct seg {
    uint64_t lo, hi; /* pages [lo, hi) */
    uint64_t row;    /* rows below it */
};
static struct seg *segs;
static size_t nseg;
static uint64_t rows;

static uint64_t first_page(const struct ev *e)
{
    return e->addr / page_size;
}
static uint64_t npages(const struct ev *e)
{
    return e->pages ? e->pages : 1;
}

static int by_lo(const void *a, const void *b)
{
    const struct seg *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

static void make_rows(void)
{
    segs = calloc(nev + 1, sizeof *segs);
    if (!segs)
        die("memory");
    size_t n = 0;
    for (size_t i = 0; i < nev; i++)
        if (evs[i].addr)
            segs[n].lo = first_page(&evs[i]), segs[n].hi = segs[n].lo + npages(&evs[i]), n++;
    qsort(segs, n, sizeof *segs, by_lo);
    nseg = 0;
    for (size_t i = 0; i < n; i++) {
        if (nseg && segs[i].lo <= segs[nseg - 1].hi + GAP) {
            if (segs[i].hi > segs[nseg - 1].hi)
                segs[nseg - 1].hi = segs[i].hi;
        } else
            segs[nseg++] = segs[i];
    }
    rows = 0;
    for (size_t i = 0; i < nseg; i++) {
        segs[i].row = rows;
        rows += segs[i].hi - segs[i].lo;
    }
}

/* The y of the bottom of page p's row (p is in a segment). */
static double yof(uint64_t p)
{
    size_t lo = 0, hi = nseg;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (segs[mid].lo <= p)
            lo = mid;
        else
            hi = mid;
    }
    double row = (double)(segs[lo].row + (p - segs[lo].lo));
    return T + PH - row / (double)(rows ? rows : 1) * PH;
}

static void legend(FILE *o, const size_t *count, const uint64_t *pages)
{
    int x = L + PW + 20, y = T + 10;
    fprintf(o, "<text x=\"%d\" y=\"%d\" font-weight=\"bold\">what the trap did (events, pages)</text>\n", x, y);
    for (int c = 0; c < NCAT; c++) {
        y += 20;
        fprintf(o, "<circle cx=\"%d\" cy=\"%d\" r=\"5\" fill=\"%s\"/>", x + 6, y - 4, cats[c].colour);
        fprintf(o, "<text x=\"%d\" y=\"%d\">%s (%zu, %llu)</text>\n", x + 18, y, cats[c].label, count[c],
                (unsigned long long)pages[c]);
    }
}

static void pages_svg(const char *path, const char *name)
{
    make_rows();
    FILE *o = svg_open(path, "pages over time", name);
    fprintf(o, "<text transform=\"translate(16 %d) rotate(-90)\" text-anchor=\"middle\">page (address; "
               "untouched stretches cut out)</text>\n",
            T + PH / 2);
    /* Where each run of pages starts, and the cuts between them. */
    double last_label = 1e9;
    for (size_t i = 0; i < nseg; i++) {
        double y = yof(segs[i].lo);
        if (i > 0)
            fprintf(o, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#bbb\" stroke-dasharray=\"4 3\"/>\n",
                    L, y, L + PW, y);
        if (last_label - y >= 14 || i == 0) {
            fprintf(o, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" font-size=\"10\">%#llx</text>\n", L - 4,
                    y - 1, (unsigned long long)(segs[i].lo * page_size));
            last_label = y;
        }
    }
    size_t count[NCAT] = { 0 }, unplaced = 0;
    uint64_t pages[NCAT] = { 0 };
    fputs("<g stroke-width=\"0\">\n", o);
    for (size_t i = 0; i < nev; i++) {
        const struct ev *e = &evs[i];
        count[e->cat]++;
        pages[e->cat] += e->pages;
        if (!e->addr) { /* reclaimed page-cache pages no mapping showed */
            unplaced++;
            continue;
        }
        double x = xof(e->when), y0 = yof(first_page(e)), y1 = yof(first_page(e) + npages(e) - 1);
        double h = (y0 - y1) + (double)PH / (double)(rows ? rows : 1);
        if (npages(e) == 1 && h < 5)
            fprintf(o, "<circle class=\"%s\" cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\"/>\n", cats[e->cat].cls,
                    x, y0 - h / 2, cats[e->cat].colour);
        else
            fprintf(o, "<rect class=\"%s\" x=\"%.1f\" y=\"%.1f\" width=\"3\" height=\"%.1f\" fill=\"%s\"/>\n",
                    cats[e->cat].cls, x - 1.5, y1 - (double)PH / (double)(rows ? rows : 1), h < 2 ? 2 : h,
                    cats[e->cat].colour);
    }
    fputs("</g>\n", o);
    legend(o, count, pages);
    fprintf(o, "<text x=\"%d\" y=\"%d\" font-size=\"11\">%zu events; %zu reclaims of page-cache pages", L + PW + 20,
            T + 250, nev, unplaced);
    fprintf(o, "</text>\n<text x=\"%d\" y=\"%d\" font-size=\"11\">no mapping showed are not drawn.</text>\n",
            L + PW + 20, T + 266);
    svg_close(o, path);
}

static const char *size_label(uint64_t pages_, char *buf, size_t n)
{
    double b = (double)pages_ * (double)page_size;
    if (b >= 1 << 30)
        snprintf(buf, n, "%llu (%.3g GiB)", (unsigned long long)pages_, b / (1 << 30));
    else if (b >= 1 << 20)
        snprintf(buf, n, "%llu (%.3g MiB)", (unsigned long long)pages_, b / (1 << 20));
    else
        snprintf(buf, n, "%llu (%.3g KiB)", (unsigned long long)pages_, b / 1024);
    return buf;
}

/* An event's counts are as it ended: a trap's after its handling (a
 * reclaim it ran inside is recorded first), so the curve takes them at
 * when + nsec, in that order. */
static uint64_t end_of(const struct ev *e)
{
    return e->when + e->nsec;
}

static int by_end(const void *a, const void *b)
{
    const struct ev *x = *(struct ev *const *)a, *y = *(struct ev *const *)b;
    return end_of(x) < end_of(y) ? -1 : end_of(x) > end_of(y) ? 1 : x < y ? -1 : x > y;
}

static void resident_svg(const char *path, const char *name)
{
    struct ev **order = malloc((nev + 1) * sizeof *order);
    if (!order)
        die("memory");
    for (size_t i = 0; i < nev; i++)
        order[i] = &evs[i];
    qsort(order, nev, sizeof *order, by_end);
    uint64_t top = 1;
    for (size_t i = 0; i < nev; i++) {
        if (evs[i].resident > top)
            top = evs[i].resident;
        if (evs[i].frames > top)
            top = evs[i].frames;
    }
    int show_budget = budget && budget <= top * 2;
    if (show_budget && budget > top)
        top = budget;
    top += top / 10 + 1;
    FILE *o = svg_open(path, "resident memory over time", name);
    fprintf(o, "<text transform=\"translate(16 %d) rotate(-90)\" text-anchor=\"middle\">pages</text>\n", T + PH / 2);
    char buf[64];
    for (int i = 0; i <= 4; i++) {
        double y = T + PH - PH * i / 4.0;
        fprintf(o, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" font-size=\"10\">%s</text>\n", L - 4, y + 3,
                size_label(top * (uint64_t)i / 4, buf, sizeof buf));
    }
#define YV(v) (T + PH - (double)(v) / (double)top * PH)
    static const char *what[2] = { "resident", "frames" };
    static const char *colour[2] = { "#1f77b4", "#ff7f0e" };
    for (int k = 0; k < 2; k++) {
        fprintf(o, "<polyline class=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", what[k],
                colour[k]);
        double prev = YV(0);
        for (size_t i = 0; i < nev; i++) {
            double x = xof(end_of(order[i])), y = YV(k ? order[i]->frames : order[i]->resident);
            fprintf(o, "%.1f,%.1f %.1f,%.1f ", x, prev, x, y); /* a step */
            prev = y;
        }
        fputs("\"/>\n", o);
    }
    int x = L + PW + 20, y = T + 10;
    fprintf(o, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2\"/>", x, y - 4, x + 14,
            y - 4, colour[0]);
    fprintf(o, "<text x=\"%d\" y=\"%d\">pages resident in the process</text>\n", x + 20, y);
    y += 20;
    fprintf(o, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2\"/>", x, y - 4, x + 14,
            y - 4, colour[1]);
    fprintf(o, "<text x=\"%d\" y=\"%d\">libumm's frames in use</text>\n", x + 20, y);
    y += 20;
    if (show_budget) {
        fprintf(o, "<line class=\"budget\" x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#d62728\" "
                   "stroke-dasharray=\"6 4\"/>\n",
                L, YV(budget), L + PW, YV(budget));
        fprintf(o, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#d62728\" stroke-dasharray=\"6 4\"/>", x,
                y - 4, x + 14, y - 4);
        fprintf(o, "<text x=\"%d\" y=\"%d\">the budget (UMM_RAM): %s</text>\n", x + 20, y,
                size_label(budget, buf, sizeof buf));
    } else if (budget)
        fprintf(o, "<text x=\"%d\" y=\"%d\">the budget, %s, is off the scale</text>\n", x, y,
                size_label(budget, buf, sizeof buf));
#undef YV
    free(order);
    svg_close(o, path);
}

static void usage(void)
{
    fprintf(stderr, "usage: %s [-o PREFIX] TRACE-FILE\n       %s [-o PREFIX] -- COMMAND [ARG...]\n", progname,
            progname);
    exit(2);
}

int main(int argc, char **argv)
{
    const char *prefix = NULL;
    int opt;
    while ((opt = getopt(argc, argv, "+o:h")) != -1) {
        if (opt == 'o')
            prefix = optarg;
        else
            usage();
    }
    int run = optind > 1 && strcmp(argv[optind - 1], "--") == 0;
    if (optind >= argc || (!run && optind != argc - 1))
        usage();
    char trace[4096], pages_path[4200], res_path[4200];
    int status = 0;
    if (run) {
        snprintf(trace, sizeof trace, "%s.trace", prefix ? prefix : "umm-trace");
        if (!prefix)
            prefix = "umm-trace";
        if (setenv("UMM_TRACE_FILE", trace, 1) != 0)
            die("setenv");
        unlink(trace);
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0)
            die("fork");
        if (pid == 0) {
            execvp(argv[optind], argv + optind);
            fprintf(stderr, "%s: %s: %s\n", progname, argv[optind], strerror(errno));
            _exit(127);
        }
        if (waitpid(pid, &status, 0) != pid)
            die("waitpid");
        status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (access(trace, R_OK) != 0) {
            fprintf(stderr, "%s: %s wrote no trace (does it use libumm, and exit normally?)\n", progname,
                    argv[optind]);
            return status ? status : 1;
        }
    } else {
        snprintf(trace, sizeof trace, "%s", argv[optind]);
        if (!prefix) { /* the trace's name without .trace */
            static char p[4096];
            snprintf(p, sizeof p, "%s", trace);
            size_t l = strlen(p);
            if (l > 6 && strcmp(p + l - 6, ".trace") == 0)
                p[l - 6] = 0;
            prefix = p;
        }
    }
    if (load(trace) != 0)
        return 1;
    t0 = nev ? evs[0].when : 0;
    t1 = t0;
    for (size_t i = 0; i < nev; i++) {
        if (evs[i].when < t0)
            t0 = evs[i].when;
        if (end_of(&evs[i]) > t1)
            t1 = end_of(&evs[i]);
    }
    const char *name = strrchr(trace, '/') ? strrchr(trace, '/') + 1 : trace;
    snprintf(pages_path, sizeof pages_path, "%s-pages.svg", prefix);
    snprintf(res_path, sizeof res_path, "%s-resident.svg", prefix);
    pages_svg(pages_path, name);
    resident_svg(res_path, name);
    printf("%s: %zu events from %s\n  pages over time:           %s\n  resident memory over time: %s\n", progname,
           nev, trace, pages_path, res_path);
    return status;
}
