#include "core/driver.h"

#include <stdarg.h>
#include <stdio.h>

void dia_instance_error(struct dia_instance *in, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(in->last_error, sizeof in->last_error, fmt, ap);
    va_end(ap);
}
