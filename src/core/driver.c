#include "core/driver.h"

#include <stdarg.h>
#include <stdio.h>

#include "core/url.h"

void dia_instance_error(struct dia_instance *in, const char *fmt, ...)
{
    char raw[sizeof in->last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    /* a safety net: a driver that quotes a URL in its error (a redirect
     * target, a server's message) must not carry a token into status */
    dia_text_redact_urls(raw, in->last_error, sizeof in->last_error);
}

void dia_instance_warning(struct dia_instance *in, const char *fmt, ...)
{
    char raw[sizeof in->warning];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    dia_text_redact_urls(raw, in->warning, sizeof in->warning);
}
