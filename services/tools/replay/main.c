/*
 * patron-replay: produces contract events for demos, tests and benchmarks.
 * The command line is a table (which option, which modes, which bounds);
 * the modes live in retail.c, synthetic.c and file.c.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"
#include "patron/num.h"
#include "replay.h"

static const char usage[] =
    "usage:\n"
    "  patron-replay online-retail --file F.csv[.gz] (--brokers B --topic T | --out FILE)\n"
    "      [--resend-percent P] [--garbage N] [--limit N] [--derive-browse]\n"
    "      [--derive-profile] [--no-visitors] [--catalog-topic T] [--seed S]\n"
    "      [--rate EVENTS_PER_S] [--progress] [--from YYYY-MM-DD] [--until YYYY-MM-DD]\n"
    "      [--resend-delay-max N]\n"
    "  patron-replay synthetic (--brokers B --topic T | --out FILE) [--events N]\n"
    "      [--customers 1000000] [--regulars 10000] [--items 100000] [--zipf 1.0]\n"
    "      [--step-ms 10] [--seed S] [--resend-percent P] [--garbage N] [--rate R]\n"
    "      [--progress] [--partitions-hint] [--anonymous-percent 0] [--visitors 1000000]\n"
    "  patron-replay file --in FILE --brokers B --topic T [--rate R] [--progress]\n"
    "common: -X key=value passes a librdkafka property (repeatable);\n"
    "        --flush-timeout-ms MS (default 300000).\n"
    "The last line on stdout is {\"events\":E,\"resent\":R,\"garbage\":G,\"customers\":C};\n"
    "--partitions-hint prints {\"partitions\":P,...} for the embedded Kafka and produces\n"
    "nothing. --until stops before the first invoice of that day (London time): a\n"
    "training period; --from produces only the events from that day on, with the ids\n"
    "and times of a whole replay (a re-published period). Resent copies wait up to\n"
    "--resend-delay-max further events (default 50). The mapping of the CSV is data/README.md's. "
    "Exit 0 when every\n"
    "message was delivered, 1 on failure, 2 on a usage error.\n";

enum opt_id {
    OPT_BROKERS = 256,
    OPT_TOPIC,
    OPT_OUT,
    OPT_SEED,
    OPT_RESEND,
    OPT_GARBAGE,
    OPT_LIMIT,
    OPT_DERIVE,
    OPT_DERIVE_PROFILE,
    OPT_NO_VISITORS,
    OPT_RATE,
    OPT_PROGRESS,
    OPT_FILE,
    OPT_IN,
    OPT_EVENTS,
    OPT_CUSTOMERS,
    OPT_REGULARS,
    OPT_ITEMS,
    OPT_ZIPF,
    OPT_STEP,
    OPT_HINT,
    OPT_FLUSH,
    OPT_UNTIL,
    OPT_FROM,
    OPT_RESEND_DELAY,
    OPT_CATALOG,
    OPT_ANONYMOUS,
    OPT_VISITORS,
    OPT_HELP,
};

#define ALL_MODES (REPLAY_ONLINE_RETAIL | REPLAY_SYNTHETIC | REPLAY_FILE)
#define GENERATORS (REPLAY_ONLINE_RETAIL | REPLAY_SYNTHETIC)

/* Which modes take an option, and the bounds of its number (if it is one). */
struct opt_rule {
    struct option opt;
    unsigned modes;
    uint64_t min, max;
};

static const struct opt_rule rules[] = {
    {{"brokers", required_argument, NULL, OPT_BROKERS}, ALL_MODES, 0, 0},
    {{"topic", required_argument, NULL, OPT_TOPIC}, ALL_MODES, 0, 0},
    {{"out", required_argument, NULL, OPT_OUT}, GENERATORS, 0, 0},
    {{"seed", required_argument, NULL, OPT_SEED}, GENERATORS, 0, UINT64_MAX},
    {{"resend-percent", required_argument, NULL, OPT_RESEND}, GENERATORS, 0, 100},
    {{"garbage", required_argument, NULL, OPT_GARBAGE}, GENERATORS, 0, 1000000000},
    {{"limit", required_argument, NULL, OPT_LIMIT}, REPLAY_ONLINE_RETAIL, 1, UINT64_MAX},
    {{"derive-browse", no_argument, NULL, OPT_DERIVE}, REPLAY_ONLINE_RETAIL, 0, 0},
    {{"derive-profile", no_argument, NULL, OPT_DERIVE_PROFILE}, REPLAY_ONLINE_RETAIL, 0, 0},
    {{"no-visitors", no_argument, NULL, OPT_NO_VISITORS}, REPLAY_ONLINE_RETAIL, 0, 0},
    {{"rate", required_argument, NULL, OPT_RATE}, ALL_MODES, 1, 1000000000},
    {{"progress", no_argument, NULL, OPT_PROGRESS}, ALL_MODES, 0, 0},
    {{"file", required_argument, NULL, OPT_FILE}, REPLAY_ONLINE_RETAIL, 0, 0},
    {{"in", required_argument, NULL, OPT_IN}, REPLAY_FILE, 0, 0},
    {{"events", required_argument, NULL, OPT_EVENTS}, REPLAY_SYNTHETIC, 1, 1000000000000},
    {{"customers", required_argument, NULL, OPT_CUSTOMERS}, REPLAY_SYNTHETIC, 1, 100000000},
    {{"regulars", required_argument, NULL, OPT_REGULARS}, REPLAY_SYNTHETIC, 0, 100000000},
    {{"items", required_argument, NULL, OPT_ITEMS}, REPLAY_SYNTHETIC, 1, 10000000},
    {{"zipf", required_argument, NULL, OPT_ZIPF}, REPLAY_SYNTHETIC, 0, 0},
    {{"step-ms", required_argument, NULL, OPT_STEP}, REPLAY_SYNTHETIC, 0, 86400000},
    {{"partitions-hint", no_argument, NULL, OPT_HINT}, REPLAY_SYNTHETIC, 0, 0},
    {{"flush-timeout-ms", required_argument, NULL, OPT_FLUSH}, ALL_MODES, 0, 86400000},
    {{"until", required_argument, NULL, OPT_UNTIL}, REPLAY_ONLINE_RETAIL, 0, 0},
    {{"from", required_argument, NULL, OPT_FROM}, REPLAY_ONLINE_RETAIL, 0, 0},
    {{"resend-delay-max", required_argument, NULL, OPT_RESEND_DELAY}, GENERATORS, 0, 1000000000},
    {{"catalog-topic", required_argument, NULL, OPT_CATALOG}, REPLAY_ONLINE_RETAIL, 0, 0},
    {{"anonymous-percent", required_argument, NULL, OPT_ANONYMOUS}, REPLAY_SYNTHETIC, 0, 100},
    {{"visitors", required_argument, NULL, OPT_VISITORS}, REPLAY_SYNTHETIC, 1, 100000000},
    {{"help", no_argument, NULL, OPT_HELP}, ALL_MODES, 0, 0},
};

static const struct {
    const char *name;
    enum replay_mode mode;
} modes[] = {
    {"online-retail", REPLAY_ONLINE_RETAIL},
    {"synthetic", REPLAY_SYNTHETIC},
    {"file", REPLAY_FILE},
};

/* Strict: decimal digits only (no sign, no spaces), within [min, max]. */
static bool parse_u64(const char *name, const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    uint64_t v;
    if (patron_parse_u64(s, strlen(s), min, max, &v)) {
        fprintf(stderr, "patron-replay: --%s %s: want an integer in %" PRIu64 "..%" PRIu64 "\n",
                name, s, min, max);
        return false;
    }
    *out = v;
    return true;
}

static bool parse_zipf(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || errno == ERANGE || !(v >= 0 && v <= 10)) {
        fprintf(stderr, "patron-replay: --zipf %s: want a number in 0..10\n", s);
        return false;
    }
    *out = v;
    return true;
}

static bool add_prop(struct replay_options *o, char *kv)
{
    char *eq = strchr(kv, '=');
    if (!eq || eq == kv) {
        fprintf(stderr, "patron-replay: -X %s: want key=value\n", kv);
        return false;
    }
    if (o->n_props == REPLAY_PROPS_MAX) {
        fprintf(stderr, "patron-replay: more than %d -X properties\n", REPLAY_PROPS_MAX);
        return false;
    }
    *eq = '\0'; /* argv is ours to cut */
    o->props[o->n_props++] = (struct replay_prop){kv, eq + 1};
    return true;
}

static bool has_prop(const struct replay_options *o, const char *key)
{
    for (size_t i = 0; i < o->n_props; i++)
        if (strcmp(o->props[i].key, key) == 0)
            return true;
    return false;
}

static const struct opt_rule *rule_of(int id)
{
    for (size_t i = 0; i < PATRON_ARRAY_LEN(rules); i++)
        if (rules[i].opt.val == id)
            return &rules[i];
    return NULL;
}

static bool set_number(const struct opt_rule *r, const char *arg, uint64_t *field)
{
    return parse_u64(r->opt.name, arg, r->min, r->max, field);
}

/* 0 to run, 1 for --help, -1 on a usage error (reported). */
static int parse_args(int argc, char **argv, struct replay_options *o)
{
    struct option longopts[PATRON_ARRAY_LEN(rules) + 1];
    for (size_t i = 0; i < PATRON_ARRAY_LEN(rules); i++)
        longopts[i] = rules[i].opt;
    longopts[PATRON_ARRAY_LEN(rules)] = (struct option){0};

    *o = (struct replay_options){
        .seed = 1,
        .flush_timeout_ms = 300000,
        .resend_delay_max = REPLAY_RESEND_DELAY_DEFAULT,
        .events = 1000000,
        .customers = 1000000,
        .regulars = 10000,
        .items = 100000,
        .step_ms = 10,
        .zipf_s = 1.0,
        .visitors = 1000000,
    };
    if (argc < 2) {
        fputs(usage, stderr);
        return -1;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
        return 1;
    for (size_t i = 0; i < PATRON_ARRAY_LEN(modes); i++)
        if (strcmp(argv[1], modes[i].name) == 0)
            o->mode = modes[i].mode;
    if (!o->mode) {
        fprintf(stderr, "patron-replay: unknown mode %s\n%s", argv[1], usage);
        return -1;
    }

    /* Options follow the mode: parse argv[1..] as if the mode were argv[0]. */
    char **args = argv + 1;
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc - 1, args, "X:h", longopts, NULL)) != -1) {
        if (c == 'X') {
            if (!add_prop(o, optarg))
                return -1;
            continue;
        }
        if (c == 'h' || c == OPT_HELP)
            return 1;
        const struct opt_rule *r = rule_of(c);
        if (!r) {
            fprintf(stderr, "patron-replay: bad option or missing value: %s\n%s", args[optind - 1],
                    usage);
            return -1;
        }
        if (!(r->modes & o->mode)) {
            fprintf(stderr, "patron-replay: %s does not take --%s\n", argv[1], r->opt.name);
            return -1;
        }
        bool ok = true;
        switch (c) {
        case OPT_BROKERS:
            o->brokers = optarg;
            break;
        case OPT_TOPIC:
            o->topic = optarg;
            break;
        case OPT_OUT:
            o->out_path = optarg;
            break;
        case OPT_SEED:
            ok = set_number(r, optarg, &o->seed);
            break;
        case OPT_RESEND:
            ok = set_number(r, optarg, &o->resend_percent);
            break;
        case OPT_RESEND_DELAY:
            ok = set_number(r, optarg, &o->resend_delay_max);
            break;
        case OPT_GARBAGE:
            ok = set_number(r, optarg, &o->garbage);
            break;
        case OPT_LIMIT:
            ok = set_number(r, optarg, &o->limit);
            break;
        case OPT_DERIVE:
            o->derive_browse = true;
            break;
        case OPT_DERIVE_PROFILE:
            o->derive_profile = true;
            break;
        case OPT_NO_VISITORS:
            o->no_visitors = true;
            break;
        case OPT_RATE:
            ok = set_number(r, optarg, &o->rate);
            break;
        case OPT_PROGRESS:
            o->progress = true;
            break;
        case OPT_FILE:
            o->csv_path = optarg;
            break;
        case OPT_IN:
            o->in_path = optarg;
            break;
        case OPT_EVENTS:
            ok = set_number(r, optarg, &o->events);
            break;
        case OPT_CUSTOMERS:
            ok = set_number(r, optarg, &o->customers);
            break;
        case OPT_REGULARS:
            ok = set_number(r, optarg, &o->regulars);
            break;
        case OPT_ITEMS:
            ok = set_number(r, optarg, &o->items);
            break;
        case OPT_ZIPF:
            ok = parse_zipf(optarg, &o->zipf_s);
            break;
        case OPT_STEP:
            ok = set_number(r, optarg, &o->step_ms);
            break;
        case OPT_HINT:
            o->partitions_hint = true;
            break;
        case OPT_FLUSH:
            ok = set_number(r, optarg, &o->flush_timeout_ms);
            break;
        case OPT_CATALOG:
            o->catalog_topic = optarg;
            break;
        case OPT_ANONYMOUS:
            ok = set_number(r, optarg, &o->anonymous_percent);
            break;
        case OPT_VISITORS:
            ok = set_number(r, optarg, &o->visitors);
            break;
        case OPT_UNTIL:
            ok = replay_london_date_ms(optarg, strlen(optarg), &o->until_ms) == 0;
            if (!ok)
                fprintf(stderr, "patron-replay: --until %s: want a date YYYY-MM-DD\n", optarg);
            o->has_until = ok;
            break;
        case OPT_FROM:
            ok = replay_london_date_ms(optarg, strlen(optarg), &o->from_ms) == 0;
            if (!ok)
                fprintf(stderr, "patron-replay: --from %s: want a date YYYY-MM-DD\n", optarg);
            o->has_from = ok;
            break;
        }
        if (!ok)
            return -1;
    }
    if (optind < argc - 1) {
        fprintf(stderr, "patron-replay: unexpected argument %s\n", args[optind]);
        return -1;
    }

    if (o->mode == REPLAY_ONLINE_RETAIL && !o->csv_path) {
        fprintf(stderr, "patron-replay: online-retail needs --file\n");
        return -1;
    }
    if (o->mode == REPLAY_FILE && !o->in_path) {
        fprintf(stderr, "patron-replay: file needs --in\n");
        return -1;
    }
    if (o->regulars > o->customers || o->regulars > o->visitors) {
        fprintf(stderr, "patron-replay: --regulars must not exceed --customers or --visitors\n");
        return -1;
    }
    bool to_kafka = !o->out_path && !o->partitions_hint;
    if (o->out_path && (o->brokers || o->topic)) {
        fprintf(stderr, "patron-replay: --out writes a file; drop --brokers and --topic\n");
        return -1;
    }
    if (o->catalog_topic && !to_kafka) {
        fprintf(stderr, "patron-replay: --catalog-topic produces to Kafka; drop --out\n");
        return -1;
    }
    if (to_kafka && !o->topic) {
        fprintf(stderr, "patron-replay: --topic is required (or --out FILE)\n");
        return -1;
    }
    if (to_kafka && !o->brokers && !has_prop(o, "bootstrap.servers") &&
        !has_prop(o, "test.mock.num.brokers")) {
        fprintf(stderr, "patron-replay: --brokers is required (or --out FILE)\n");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct replay_options o;
    int rc = parse_args(argc, argv, &o);
    if (rc != 0) {
        if (rc > 0)
            fputs(usage, stdout);
        return rc > 0 ? 0 : 2;
    }
    switch (o.mode) {
    case REPLAY_ONLINE_RETAIL:
        return replay_online_retail(&o);
    case REPLAY_SYNTHETIC:
        return replay_synthetic(&o);
    case REPLAY_FILE:
        return replay_file(&o);
    }
    return 2;
}
