// vitest setup file: tests start machines directly, so the testbed recipes are registered as the CLI registers them.
import '../../machines/testbed/register.ts';
