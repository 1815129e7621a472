/* tandem-supervisor: placeholder until the process manager lands. */
#include <stdio.h>

int main(void)
{
    fprintf(stderr, "tandem-supervisor: not implemented yet\n");
    return 1;
}
