// The script-tag build: `<script src="/peerfetch.js" data-tracker="wss://…" defer>` starts
// peerfetch from its own data- attributes and exposes the instance as `window.peerfetch`.
import { optionsFromScript } from './options.js';
import { start } from './index.js';

// currentScript is only set while this script runs synchronously, also when inserted by script.
const script = document.currentScript;
if (!window.peerfetch) window.peerfetch = start(optionsFromScript(script));
