// npm scripts must run on the Node 22 binary that `npm ci` installs into node_modules/.bin:
// pg-boss 12, TypeORM 1.1 and the NestJS 12 packages need it, and a silent fallback to an older Node fails late.
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 13)) {
  process.stderr.write(
    `nestjs-checkpoint needs Node >= 22.13, but this is ${process.versions.node}.\n` +
      'Run it through npm (npm test, npm run demo) after `npm ci`, which installs Node 22 locally.\n',
  );
  process.exit(1);
}
