/*
 * main.c: an empty program linked against one static library with --whole-archive (every object
 * of it, used or not) and only the dependencies that library declares in CMake. It builds only
 * if the library links on its own: no undefined reference into a layer it may not use (STYLE R1).
 */
int main(void)
{
    return 0;
}
