/* c2s: the PROXY protocol v2 header parser (c2s/proxy.c). */
#include <string.h>

#include "c2s/c2s.h"
#include "t/unit/tap.h"

static const unsigned char sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

static size_t make(unsigned char *out, unsigned ver_cmd, unsigned fam, const unsigned char *body, size_t n)
{
    memcpy(out, sig, 12);
    out[12] = (unsigned char)ver_cmd;
    out[13] = (unsigned char)fam;
    out[14] = (unsigned char)(n >> 8);
    out[15] = (unsigned char)n;
    memcpy(out + 16, body, n);
    return 16 + n;
}

int main(void)
{
    unsigned char h[600];
    char ip[64];
    const unsigned char v4[12] = {192, 0, 2, 7, 127, 0, 0, 1, 0x9c, 0x40, 0x14, 0x66};
    size_t n = make(h, 0x21, 0x11, v4, sizeof v4);
    memcpy(h + n, "<stream", 7);

    is_int(proxy_parse((char *)h, n + 7, ip, sizeof ip), (long)n, "IPv4: the header length is consumed");
    is_str(ip, "192.0.2.7", "IPv4: the source address");
    for (size_t cut = 1; cut < n; cut++) {
        if (proxy_parse((char *)h, cut, ip, sizeof ip) != 0) {
            ok(0, "a header cut at %zu bytes asks for more", cut);
            break;
        }
        if (cut == n - 1) ok(1, "every truncated header asks for more");
    }

    unsigned char v6[36] = {0};
    v6[0] = 0x20; v6[1] = 0x01; v6[2] = 0x0d; v6[3] = 0xb8; v6[15] = 0x05;
    n = make(h, 0x21, 0x21, v6, sizeof v6);
    is_int(proxy_parse((char *)h, n, ip, sizeof ip), (long)n, "IPv6: consumed");
    is_str(ip, "2001:db8::5", "IPv6: the source address");

    n = make(h, 0x20, 0x00, v4, 0);
    ip[0] = 'x';
    is_int(proxy_parse((char *)h, n, ip, sizeof ip), (long)n, "LOCAL: consumed");
    is_str(ip, "", "LOCAL: no address (the socket's is kept)");

    /* TLV extensions after the addresses are skipped. */
    unsigned char ext[20];
    memcpy(ext, v4, 12);
    memset(ext + 12, 0xAA, 8);
    n = make(h, 0x21, 0x11, ext, sizeof ext);
    is_int(proxy_parse((char *)h, n, ip, sizeof ip), (long)n, "TLVs are skipped");

    is_int(proxy_parse("<?xml version='1.0'?>", 21, ip, sizeof ip), -1, "plain XML is not a PROXY header");
    is_int(proxy_parse("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", 32, ip, sizeof ip), -1, "version 1 (text) is refused");
    n = make(h, 0x11, 0x11, v4, sizeof v4);
    is_int(proxy_parse((char *)h, n, ip, sizeof ip), -1, "a wrong version is refused");
    n = make(h, 0x21, 0x11, v4, 4);
    is_int(proxy_parse((char *)h, n, ip, sizeof ip), -1, "a too short IPv4 body is refused");
    n = make(h, 0x21, 0x31, v4, sizeof v4);
    is_int(proxy_parse((char *)h, n, ip, sizeof ip), -1, "UNIX sockets are refused");
    return tap_done();
}
