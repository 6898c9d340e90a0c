/* asyncdev.h -- "Async Delay" device support: an output record (ao, bo, mbbo, longout, stringout) whose write
 * completes only after a delay, like a slow controller (OUT = "@seconds", e.g. "@0.5"). Puts with
 * completion (caput -c, PV.put(wait=True)) on such a record return when the delay has passed; simulations
 * and the CA tests use it. */
#ifndef RELOC_ASYNCDEV_H
#define RELOC_ASYNCDEV_H

void asyncdev_register(void);

#endif
