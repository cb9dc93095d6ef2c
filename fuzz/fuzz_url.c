/*
 * libFuzzer target: URL splitting and the redacted display form
 * (src/core/url.c), which sees every target a user writes.
 *
 * Checks, for any input: splitting never reads outside the string and
 * yields parts inside it with a port in 1..65535 or -1; the display form
 * and the sentence redaction always end in a NUL within their buffer; and a
 * password of user:password@ never survives into the display form.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/url.h"

static void inside(const char *s, size_t n, const char *part, size_t len)
{
    if (part && (part < s || part + len > s + n))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    size_t n = strlen(s);

    struct dia_url u;
    char why[128];
    if (dia_url_split(s, &u, why, sizeof why) == DIA_OK) {
        inside(s, n, u.scheme, u.scheme_len);
        inside(s, n, u.user, u.user_len);
        inside(s, n, u.password, u.password_len);
        inside(s, n, u.host, u.host_len);
        inside(s, n, u.path, u.path_len);
        inside(s, n, u.query, u.query_len);
        inside(s, n, u.fragment, u.fragment_len);
        if (u.port != -1 && (u.port < 1 || u.port > 65535))
            abort();
    } else if (memchr(why, '\0', sizeof why) == NULL) {
        abort();
    }

    char shown[512];
    memset(shown, 'x', sizeof shown);
    dia_url_display(s, shown, sizeof shown);
    if (memchr(shown, '\0', sizeof shown) == NULL)
        abort();
    /* "user:password@" must not appear as written, unless the password is
     * the placeholder itself or the whole text was cut short */
    if (dia_url_split(s, &u, why, sizeof why) == DIA_OK && u.password && u.password_len >= 4 &&
        n + 16 < sizeof shown) {
        char cred[4096 + 64];
        size_t k = 0;
        memcpy(cred + k, u.user, u.user_len);
        k += u.user_len;
        cred[k++] = ':';
        memcpy(cred + k, u.password, u.password_len);
        k += u.password_len;
        cred[k++] = '@';
        cred[k] = '\0';
        /* the same text repeated elsewhere in the URL (a path, a query) is
         * not the userinfo and may show */
        const char *again = strstr(s, cred);
        bool repeated = again && strstr(again + 1, cred);
        if (!repeated && strncmp(u.password, DIA_REDACTED, u.password_len) != 0 &&
            strstr(shown, cred))
            abort();
    }

    char sentence[256];
    memset(sentence, 'x', sizeof sentence);
    dia_text_redact_urls(s, sentence, sizeof sentence);
    if (memchr(sentence, '\0', sizeof sentence) == NULL)
        abort();
    free(s);
    return 0;
}
