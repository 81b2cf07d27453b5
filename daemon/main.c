/*
 * main.c: atlasd's entry point. The ingestion loop arrives with the daemon issue; until then the
 * binary documents itself and refuses to run rather than pretending to.
 */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--help") == 0) {
        printf("usage: atlasd --db DIR --brokers LIST [--http HOST:PORT] [--config FILE]\n\n"
               "The streaming embedding daemon. Not yet built: use `atlasctl import` to load a\n"
               "store from dumps in the meantime.\n");
        return 0;
    }
    fprintf(stderr, "atlasd: the daemon is not built yet (see README.md)\n");
    return 1;
}
