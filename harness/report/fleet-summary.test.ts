// A fleet's machines on one line of the console reporter: how many, their accelerator, cold and warm starts with
// their range of times (a 64-node fleet's case line names no 64 machines one by one); in the live view a cell each.
import { describe, expect, it } from 'vitest';
import type { MachineResult } from '../runner/results.ts';
import { fleetStates, fleetSummary } from './console-reporter.ts';

const vm = (name: string, mode: 'cold' | 'warm', ms: number): MachineResult => ({ role: name, name, profile: 'x86_64-direct', logPath: '/dev/null', fleet: 'node', facts: { kind: 'vm', profile: 'x86_64-direct', arch: 'x86_64', firmware: 'bios', accel: 'tcg', accelReason: 'test', qemuVersion: '7.2', start: { mode, ms } } as never });

describe('fleetSummary', () => {
  it('counts cold and warm starts, with the range of their times', () => {
    expect(fleetSummary('node', [vm('node0', 'cold', 5200), vm('node1', 'warm', 18_700), vm('node2', 'warm', 30_500)])).toBe('node (3): tcg, 1 cold 5.2 s, 2 warm 18.7–30.5 s');
    expect(fleetSummary('node', [vm('node0', 'warm', 2000), vm('node1', 'warm', 2000)])).toBe('node (2): tcg, 2 warm 2.0 s');
  });
  it('a fleet whose machines have no facts yet (an early failure) is its size', () => {
    expect(fleetSummary('node', [{ role: 'node0', name: 'node0', profile: 'p', logPath: '/dev/null', fleet: 'node' }])).toBe('node (1)');
  });
});

describe('fleetStates (the live view)', () => {
  it('a cell per machine in fleet order, then how many are in each state', () => {
    const states = new Map([['node0', 'running'], ['node1', 'running'], ['node2', 'starting'], ['node4', 'stopping']]);
    expect(fleetStates('node', ['node0', 'node1', 'node2', 'node3', 'node4'], states)).toBe('node ██▒░▬ 2 running · 1 starting · 1 stopping · 1 stopped');
    expect(fleetStates('node', ['node0', 'node1'], new Map())).toBe('node ░░ 2 stopped');
  });
});
