/*
 * Record → Nightscout documents, shared by the nightscout sink and
 * `diabridge export --format nightscout`.  The mapping is documented field
 * by field in docs/sinks/nightscout.md; the facts about Nightscout it rests
 * on are in specs/smartpix-and-sinks.md §2.
 *
 * Also the two small computations every Nightscout client needs: the value
 * of the api-secret header (SHA-1 hex of the secret, §2.1) and the API v3
 * identifier (UUIDv5 in the namespace "NightscoutRocks!", §2.5).
 */
#ifndef DIA_SINK_NIGHTSCOUT_MAP_H
#define DIA_SINK_NIGHTSCOUT_MAP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/record.h"

enum dia_ns_collection {
    DIA_NS_NONE = 0, /* this record has no Nightscout form */
    DIA_NS_ENTRIES,
    DIA_NS_TREATMENTS,
    DIA_NS_DEVICESTATUS,
};
#define DIA_NS_COLLECTIONS 4

/* A record becomes at most this many documents (a meter reading: an mbg
 * entry and a "BG Check" treatment). */
#define DIA_NS_MAX_DOCS 2

struct dia_ns_doc {
    enum dia_ns_collection coll;
    json_t *doc; /* owned */
};

/*
 * The Nightscout documents for r (API v1 form).  Returns how many were
 * written to docs (0: the record has no Nightscout form, e.g. a scheduled
 * basal rate, which Nightscout takes from the profile), or DIA_ERR_NOMEM.
 * Free with dia_ns_docs_free.
 */
int dia_ns_documents(const struct dia_record *r, struct dia_ns_doc docs[DIA_NS_MAX_DOCS]);
void dia_ns_docs_free(struct dia_ns_doc *docs, int n);

/*
 * Turn a v1 document into its API v3 form in place: v3 requires `date`
 * (ms), `app` and `utcOffset` on every collection and refuses a later
 * change of utcOffset, so the same record always gets the same values.
 */
int dia_ns_to_v3(json_t *doc, enum dia_ns_collection coll);

const char *dia_ns_collection_name(enum dia_ns_collection c);

/* "sim:SIM1": where a record came from (driver, device id) */
void dia_ns_device_name(const struct dia_record *r, char *buf, size_t len);

/*
 * Nightscout's API v3 identifier: UUIDv5 with the 16 bytes "NightscoutRocks!"
 * as namespace and "<device>_<date ms>[_<eventType>]" as name (§2.5).
 * out receives 36 characters plus NUL.
 */
#define DIA_NS_UUID_LEN 36
void dia_ns_identifier(const char *device, int64_t date_ms, const char *event_type,
                       char out[DIA_NS_UUID_LEN + 1]);

/*
 * The api-secret header value: lower-case SHA-1 hex of the secret.  A secret
 * that already is 40 hex digits is taken as that hash (lower-cased).
 * Returns DIA_OK, or DIA_ERR_ARG for an empty secret.
 */
int dia_ns_secret_hash(const char *secret, char out[41]);

/* True for records that came from Nightscout: they must never go back. */
bool dia_ns_from_nightscout(const struct dia_record *r);

/*
 * Whether an error answer is Nightscout's own: a JSON object whose `status`
 * is the HTTP status and which has a `message`, as every Nightscout error
 * is ({"status":400,"message":"Field utcOffset cannot be modified by the
 * client"}).  A proxy's or web server's error page is not.
 */
bool dia_ns_is_nightscout_error(const char *body, size_t len, long status);

/*
 * Whether a 2xx answer to an API v3 POST says the document is stored:
 * {"status":201,"identifier":…,"lastModified":…} for a new one,
 * {"status":200,"identifier":…,"isDeduplication":true,…} for a repeat
 * (§2.5).  A login page or a proxy's page answered with 200 is not.
 */
bool dia_ns_v3_stored(const char *body, size_t len, long status);

/*
 * Batch splitting (pure, so it can be tested without a server).  post(ctx,
 * lo, hi) sends records [lo, hi) and returns DIA_OK, DIA_ERR_PERMANENT when
 * Nightscout refused the request because of its content (400, 413), or any
 * other error.  On a refusal the range is halved until the one record that
 * is refused is found.  *acked receives how many records from lo on were
 * accepted (a prefix); the return value is DIA_ERR_PERMANENT when
 * records[*acked] alone is refused, DIA_OK when all were accepted, or the
 * first other error.  Whether a refusal is really about that record (and
 * not a proxy refusing everything) is for the caller to judge.
 */
typedef int (*dia_ns_post_fn)(void *ctx, size_t lo, size_t hi);
int dia_ns_deliver_split(dia_ns_post_fn post, void *ctx, size_t lo, size_t hi, size_t *acked);

#endif
