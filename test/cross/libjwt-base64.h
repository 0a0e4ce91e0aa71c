/* test/cross/libjwt-base64.h: the "base64.h" that libjwt's jwt.c includes, for the static
 * libjwt of test/cross/libjwt.sh. Debian's libjwt tarball leaves out upstream's base64.c and
 * base64.h (a licence Debian does not take) and its packaging links libb64 instead; the
 * static TLS daemon links OpenSSL anyway, so its base64 does the work here. jwt.c calls
 * the two functions below and no other. */
#ifndef WSR_LIBJWT_BASE64_H
#define WSR_LIBJWT_BASE64_H

#include <string.h>

#include <openssl/evp.h>

/* Writes the base64 of len bytes of src and a NUL to dst, which holds 4 * ceil(len / 3) + 1
 * bytes; returns that length with the NUL, as upstream's function did. */
static inline int jwt_Base64encode(char *dst, const char *src, int len)
{
	return EVP_EncodeBlock((unsigned char *)dst, (const unsigned char *)src, len) + 1;
}

/* Decodes src (standard alphabet, padded to a multiple of 4 by jwt_b64_decode) into dst;
 * returns the bytes decoded, 0 when src is not base64 (jwt_b64_decode's failure).
 * EVP_DecodeBlock takes '=' anywhere as zero bits and counts the bytes padding stands for,
 * so padding is checked and subtracted here: one token has one spelling. */
static inline int jwt_Base64decode(char *dst, const char *src)
{
	size_t n = strlen(src), pad = 0;
	int len;

	while (pad < n && src[n - 1 - pad] == '=')
		pad++;
	if (pad > 2 || memchr(src, '=', n - pad) != NULL)
		return 0;
	len = EVP_DecodeBlock((unsigned char *)dst, (const unsigned char *)src, (int)n);
	if (len < (int)pad)
		return 0;
	return len - (int)pad;
}

#endif
