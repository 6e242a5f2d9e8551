/* A library reaching its thread-local variable through the general-dynamic
 * TLS model, as -fPIC code does: x86_64 calls __tls_get_addr with
 * "data16 data16 rex.W call", a call whose 0x66 prefixes REX.W overrides
 * (the linker rewrites the sequence in place, so it pads the call to the
 * same length as its replacement).  libuser.c's plugin: plugin_work(x)
 * returns 10 * (the sum of every x so far) + x. */
__thread int tls_total;

int plugin_work(int x)
{
    tls_total += x;
    return tls_total * 10 + x;
}
