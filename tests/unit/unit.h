/* What the unit tests share. Include after <cmocka.h> and the layout headers (struct rp_err). */
#ifndef RP_TEST_UNIT_H
#define RP_TEST_UNIT_H

/* OK(call): call must succeed; it reports into E_, and a failure names the call and its error.
 * E_ exists only inside OK's argument. */
#define OK(call)                                                    \
	do {                                                        \
		struct rp_err e_ = { "" };                          \
		if ((call) < 0)                                     \
			fail_msg("%s: %s", #call, e_.msg);          \
	} while (0)
#define E_ (&e_)

#endif
