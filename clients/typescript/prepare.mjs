// `prepare`: builds dist/ when the package is installed from its folder
// (`npm install ./clients/typescript`, which links the folder and runs this there, but
// installs no devDependencies into it). Installs them from the lock file first when
// they are missing, so that a fresh checkout builds; in a working copy that ran `npm ci`
// it only builds.
import { execSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const options = { cwd: dirname(fileURLToPath(import.meta.url)), stdio: 'inherit' };
if (!existsSync(new URL('./node_modules/typescript/package.json', import.meta.url))) {
  execSync('npm ci --ignore-scripts --include=dev --no-audit --no-fund', options);
}
execSync('npm run build', options);
