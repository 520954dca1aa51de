/* The PROXY protocol, version 2 (binary), as sent by TCP balancers (HAProxy
 * and others) in front of the connection: it carries the client's real
 * address. Only TCP over IPv4/IPv6 and LOCAL (health checks) are accepted. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "c2s/c2s.h"

static const unsigned char sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

long proxy_parse(const char *data, size_t len, char *ip, size_t iplen)
{
    const unsigned char *p = (const unsigned char *)data;
    size_t cmp = len < sizeof sig ? len : sizeof sig;
    if (memcmp(p, sig, cmp) != 0) return -1;
    if (len < 16) return 0;
    unsigned ver = p[12] >> 4, cmd = p[12] & 0x0F;
    unsigned fam = p[13];
    size_t body = ((size_t)p[14] << 8) | p[15];
    if (ver != 2 || cmd > 1) return -1;
    if (len < 16 + body) return 0;
    if (cmd == 0) {               /* LOCAL: the balancer's own connection */
        if (ip && iplen) *ip = 0;
        return (long)(16 + body);
    }
    const unsigned char *a = p + 16;
    if (fam == 0x11) {            /* TCP over IPv4 */
        if (body < 12) return -1;
        if (!inet_ntop(AF_INET, a, ip, (socklen_t)iplen)) return -1;
    } else if (fam == 0x21) {     /* TCP over IPv6 */
        if (body < 36) return -1;
        if (!inet_ntop(AF_INET6, a, ip, (socklen_t)iplen)) return -1;
    } else if (fam == 0x00) {     /* UNSPEC: keep the socket's address */
        if (ip && iplen) *ip = 0;
    } else {
        return -1;
    }
    return (long)(16 + body);
}
