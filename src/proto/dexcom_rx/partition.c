/*
 * The receiver's XML replies: READ_DATABASE_PARTITION_INFO and
 * READ_FIRMWARE_HEADER.
 *
 * Both replies are one ASCII XML text, not NUL-terminated (spec §1.5).  The
 * G4 capture (line 63) shows the partition info as
 *
 *   <PartitionInfo SchemaVersion='1' PageHeaderVersion='1'
 *                  PageDataLength='500'>
 *     <Partition Name='EGVData' Id='4' RecordRevision='2' RecordLength='13'/>
 *     …
 *   </PartitionInfo>
 *
 * and the firmware header (line 3) as a single empty element
 * <FirmwareHeader … ProductId='G4Receiver' FirmwareVersion='2.0.1.104' …/>.
 * The firmware settings reply uses double quotes, so both quote styles are
 * accepted (spec §1.5).
 *
 * The spec's advice (§2.1, §2.2) is to read RecordRevision and RecordLength
 * from this XML instead of guessing the receiver generation: G4 EGV is
 * revision 2 with 13-byte records, G5 revision 4 with 23, touchscreen
 * receivers revision 5 with 25.  PageDataLength is 500 on every receiver we
 * know of, and the page layout (28 + 500 = 528 bytes) depends on it, so any
 * other value is refused rather than guessed at.
 *
 * This is a small scanner, not an XML parser: it finds `<Name`, reads
 * `attr = 'value'` pairs up to the closing `>`, and does not decode
 * entities (none appear in these replies).  It never reads past `len`.
 */
#include "proto/dexcom_rx/dexcom_rx.h"

#include "core/err.h"

#include <string.h>

struct xml_span {
    const uint8_t *p;
    size_t len;
};

static bool is_space(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_name_char(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == ':' || c == '.';
}

/* Find the next start tag named exactly `name` at or after *pos.  On
 * success *pos is just after the name and *end is the index of the tag's
 * closing '>' (or len if it never closes: then the tag is not returned). */
static bool find_tag(const uint8_t *x, size_t len, size_t *pos, const char *name, size_t *end)
{
    size_t nlen = strlen(name);
    for (size_t i = *pos; i + 1 + nlen <= len; i++) {
        if (x[i] != '<' || memcmp(x + i + 1, name, nlen) != 0)
            continue;
        size_t after = i + 1 + nlen;
        if (after < len && is_name_char(x[after]))
            continue; /* <PartitionInfo when looking for <Partition */
        size_t j = after;
        uint8_t quote = 0;
        while (j < len) {
            if (quote) {
                if (x[j] == quote)
                    quote = 0;
            } else if (x[j] == '\'' || x[j] == '"') {
                quote = x[j];
            } else if (x[j] == '>') {
                break;
            }
            j++;
        }
        if (j >= len)
            return false;
        *pos = after;
        *end = j;
        return true;
    }
    return false;
}

/* Look up an attribute between [from, to) of a tag. */
static bool tag_attr(const uint8_t *x, size_t from, size_t to, const char *attr,
                     struct xml_span *val)
{
    size_t alen = strlen(attr);
    size_t i = from;
    while (i < to) {
        while (i < to && !is_name_char(x[i]))
            i++;
        size_t nstart = i;
        while (i < to && is_name_char(x[i]))
            i++;
        size_t nlen = i - nstart;
        while (i < to && is_space(x[i]))
            i++;
        if (i >= to || x[i] != '=') {
            continue; /* a bare word or the '/' of "/>" */
        }
        i++;
        while (i < to && is_space(x[i]))
            i++;
        if (i >= to || (x[i] != '\'' && x[i] != '"'))
            return false; /* malformed: stop rather than guess */
        uint8_t q = x[i++];
        size_t vstart = i;
        while (i < to && x[i] != q)
            i++;
        if (i >= to)
            return false;
        if (nlen == alen && memcmp(x + nstart, attr, alen) == 0) {
            val->p = x + vstart;
            val->len = i - vstart;
            return true;
        }
        i++;
    }
    return false;
}

/* A decimal integer that fits in 0..max; no sign, no spaces. */
static bool span_uint(struct xml_span v, unsigned long max, unsigned long *out)
{
    if (v.len == 0 || v.len > 10)
        return false;
    unsigned long n = 0;
    for (size_t i = 0; i < v.len; i++) {
        if (v.p[i] < '0' || v.p[i] > '9')
            return false;
        n = n * 10 + (unsigned long)(v.p[i] - '0');
    }
    if (n > max)
        return false;
    *out = n;
    return true;
}

int dexcom_rx_xml_attr(const uint8_t *xml, size_t len, const char *element, const char *attr,
                       char *out, size_t cap)
{
    if (!xml || !element || !attr || !out || cap == 0)
        return DIA_ERR_ARG;
    size_t pos = 0, end = 0;
    struct xml_span v;
    if (!find_tag(xml, len, &pos, element, &end) || !tag_attr(xml, pos, end, attr, &v))
        return DIA_ERR_NOT_MINE;
    if (v.len + 1 > cap)
        return DIA_ERR_TRUNCATED;
    memcpy(out, v.p, v.len);
    out[v.len] = '\0';
    return DIA_OK;
}

int dexcom_rx_partition_info_parse(const uint8_t *xml, size_t len,
                                   struct dexcom_rx_partition_info *out)
{
    if (!xml || !out)
        return DIA_ERR_ARG;
    memset(out, 0, sizeof *out);
    size_t pos = 0, end = 0;
    if (!find_tag(xml, len, &pos, "PartitionInfo", &end))
        return DIA_ERR_NOT_MINE;

    struct xml_span v;
    unsigned long n;
    out->page_data_length = DEXCOM_RX_PAGE_DATA_SIZE;
    if (tag_attr(xml, pos, end, "PageDataLength", &v)) {
        if (!span_uint(v, 65535, &n))
            return DIA_ERR_IMPLAUSIBLE;
        if (n != DEXCOM_RX_PAGE_DATA_SIZE)
            return DIA_ERR_UNSUPPORTED;
    }
    if (tag_attr(xml, pos, end, "PageHeaderVersion", &v) && span_uint(v, 255, &n))
        out->page_header_version = (uint8_t)n;

    pos = end;
    while (find_tag(xml, len, &pos, "Partition", &end)) {
        unsigned long id, rev, rlen;
        struct xml_span vid, vrev, vlen, vname;
        size_t from = pos;
        pos = end;
        if (!tag_attr(xml, from, end, "Id", &vid) || !span_uint(vid, 255, &id) ||
            !tag_attr(xml, from, end, "RecordRevision", &vrev) || !span_uint(vrev, 255, &rev) ||
            !tag_attr(xml, from, end, "RecordLength", &vlen) ||
            !span_uint(vlen, DEXCOM_RX_PAGE_DATA_SIZE, &rlen) || rlen < 10 ||
            out->part[id].present) {
            out->skipped++;
            continue;
        }
        struct dexcom_rx_partition *p = &out->part[id];
        p->present = true;
        p->revision = (uint8_t)rev;
        p->record_length = (uint16_t)rlen;
        if (tag_attr(xml, from, end, "Name", &vname)) {
            size_t k = vname.len < sizeof p->name - 1 ? vname.len : sizeof p->name - 1;
            for (size_t i = 0; i < k; i++)
                p->name[i] = (vname.p[i] >= 0x20 && vname.p[i] < 0x7F) ? (char)vname.p[i] : '?';
            p->name[k] = '\0';
        }
        out->count++;
    }
    return out->count > 0 ? DIA_OK : DIA_ERR_IMPLAUSIBLE;
}

const struct dexcom_rx_partition *
dexcom_rx_partition_find(const struct dexcom_rx_partition_info *pi, uint8_t record_type)
{
    if (!pi || !pi->part[record_type].present)
        return NULL;
    return &pi->part[record_type];
}
