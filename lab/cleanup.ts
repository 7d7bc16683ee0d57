// Tear down every lab under /run/ifbus-lab (left behind by a killed test run).
import { cleanupLab, listLabs } from "./host";

for (const id of listLabs()) {
    cleanupLab(id);
    console.log(`removed lab ${id}`);
}
