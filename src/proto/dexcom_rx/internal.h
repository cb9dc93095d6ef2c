/*
 * Helpers shared by the dexcom_rx codec files; not part of the API.
 * Every integer on the wire is little-endian (spec §1.3, §2.1).
 */
#ifndef DIA_PROTO_DEXCOM_RX_INTERNAL_H
#define DIA_PROTO_DEXCOM_RX_INTERNAL_H

#include <stdint.h>
#include <string.h>

static inline uint16_t dexcom_rx_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t dexcom_rx_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static inline int32_t dexcom_rx_le32s(const uint8_t *p)
{
    uint32_t u = dexcom_rx_le32(p);
    int32_t s;
    memcpy(&s, &u, sizeof s); /* two's complement reinterpretation */
    return s;
}

static inline double dexcom_rx_le_f64(const uint8_t *p)
{
    uint64_t u = 0;
    for (int i = 7; i >= 0; i--)
        u = (u << 8) | p[i];
    double d;
    memcpy(&d, &u, sizeof d); /* IEEE-754 binary64, as on every host we run on */
    return d;
}

static inline void dexcom_rx_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void dexcom_rx_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

#endif
