/* test_parallel.c -- unit tests of src/core/parallel: parallel_for hands out every item once; parallel_barrier keeps
 * rounds apart, on its spinning path and on its sleeping one. */
#include "unit.h"

#include "core/parallel/parallel.h"

#include <pthread.h>
#include <time.h>

enum { ITEMS = 1000, PARTIES = 3, ROUNDS = 20000, LATE_EVERY = 500 };

static void mark_item(void *ctx, int item, int worker)
{
    (void)worker;
    atomic_fetch_add(&((atomic_int *)ctx)[item], 1);
}

static void every_item_once(void **state)
{
    (void)state;
    static atomic_int seen[ITEMS];
    for (int threads = 1; threads <= 4; threads++) {
        for (int i = 0; i < ITEMS; i++) atomic_init(&seen[i], 0);
        parallel_for(ITEMS, threads, mark_item, seen);
        for (int i = 0; i < ITEMS; i++) assert_int_equal(atomic_load(&seen[i]), 1);
    }
}

typedef struct meeting {
    parallel_barrier barrier;
    int written[PARTIES];   /* round r: each party writes its own slot, then all read every slot */
    atomic_int wrong;       /* reads of a slot that did not hold the round (counted, asserted by the main thread) */
} meeting;

typedef struct party {
    meeting *m;
    int id;
} party;

static void *attend(void *arg)
{
    party *p = arg;
    meeting *m = p->m;
    for (int round = 0; round < ROUNDS; round++) {
        /* Now and then one party comes late (0.3 ms, beyond the spinning), so the others sleep in the futex. */
        if (round % LATE_EVERY == p->id) nanosleep(&(struct timespec){.tv_nsec = 300000}, NULL);
        m->written[p->id] = round;
        parallel_barrier_wait(&m->barrier);
        for (int i = 0; i < PARTIES; i++)
            if (m->written[i] != round) atomic_fetch_add(&m->wrong, 1);
        parallel_barrier_wait(&m->barrier);   /* nobody writes the next round before all have read this one */
    }
    return NULL;
}

static void barrier_keeps_rounds_apart(void **state)
{
    (void)state;
    meeting m = {0};
    atomic_init(&m.wrong, 0);
    parallel_barrier_init(&m.barrier, PARTIES);
    pthread_t threads[PARTIES];
    party parties[PARTIES];
    for (int i = 0; i < PARTIES; i++) {
        parties[i] = (party){&m, i};
        assert_int_equal(pthread_create(&threads[i], NULL, attend, &parties[i]), 0);
    }
    for (int i = 0; i < PARTIES; i++) pthread_join(threads[i], NULL);
    assert_int_equal(atomic_load(&m.wrong), 0);
    assert_int_equal(atomic_load(&m.barrier.sleeping), 1);   /* the sleeping path was taken too */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_item_once),
        cmocka_unit_test(barrier_keeps_rounds_apart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
