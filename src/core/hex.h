/* Hex digits, in one place for everything above src/proto that reads hex
 * text (captures, percent-encoded URLs).  Header-only so the unit tests of
 * the codecs can use it without linking core; src/proto keeps its own,
 * since it may not depend on core. */
#ifndef DIA_CORE_HEX_H
#define DIA_CORE_HEX_H

/* The value of one hex digit (either case), or -1 for anything else.  Takes
 * an int so that char, signed or not, and uint8_t all pass unchanged: a
 * negative char is simply not a digit. */
static inline int dia_hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

#endif
