/* fpargs.h: the prototypes of fpargs.c, for include() with -I tests/targets. */
double mix(double x, long a, int b, short c, unsigned d, long e, long f, char g);
double scale(float v, double w, int n);
unsigned long wide(unsigned long u, unsigned char b, signed char s);
