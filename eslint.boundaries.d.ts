// Types for eslint.boundaries.js (plain JS: eslint.config.js imports it).
import type { Linter } from 'eslint';

declare const boundaries: Linter.Config[];
export default boundaries;
